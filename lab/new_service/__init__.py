"""Start your own service from this repository: `make new-service DEST=../payments`.

`lab.new_service.rules` says what the new project leaves out and where it is rewritten,
`lab.new_service.generate` applies those rules to a copy, and `lab.new_service.check` runs the
copy's lint and tests (docs/new-service.md).
"""
