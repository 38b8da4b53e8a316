"""The ledgerctl command line."""
