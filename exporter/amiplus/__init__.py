"""What AMIplus telegrams mean: the field table, readings, meter clocks, vendor families,
eLicznik credentials, plain-words explanations and simulated meters."""
