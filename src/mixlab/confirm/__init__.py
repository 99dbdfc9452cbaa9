"""Confirmation of an optimum: several seeds per mixture and paired-bootstrap intervals (``confirm.json``)."""
