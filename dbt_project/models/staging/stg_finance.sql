-- One row per contribution type in a finance return: typing only (the contract's types), joined with nothing.
{{ staged_return('finance') }}
