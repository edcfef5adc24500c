"""The validate stage: every raw table checked against the contract, clean typed tables out.

`findings` (findings, severities, the readable report), `files` (a missing folder, files that
cannot be read), `columns` (reading a raw column as its contract type), `schema` (missing tables
and columns, empty columns, the plan of one table), `rows` (counting row checks, examples, drops),
`lookup` (activity joined to its customer), one module per kind of row check (`keys`, `times`,
`values`), and `run` (`validate_tables`, `write_validated`). Imports only churnml.data.contract and
churnml.data.io."""
