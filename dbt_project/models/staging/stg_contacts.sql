-- One row per contact, as the gate loaded it: typing only (the contract's types), joined with nothing.
{{ staged_return('contacts') }}
