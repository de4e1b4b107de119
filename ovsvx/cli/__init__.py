"""The command line: parses arguments, calls the layers below, renders what they return."""
