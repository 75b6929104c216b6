"""Bad-input corpus for the reliability tests (generated at test time by :mod:`badinput.generate`)."""
