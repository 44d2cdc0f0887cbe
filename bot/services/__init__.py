"""Services: the only code that reads or writes storage models."""
