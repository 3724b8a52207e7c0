-- One row per child death notification, as the gate loaded it: typing only (the contract's types), joined with nothing.
{{ staged_return('child_deaths') }}
