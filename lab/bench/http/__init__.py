"""`bench http`: real server processes (uvicorn, one worker each) driven by wrk over TCP."""
