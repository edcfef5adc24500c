"""Raw data in: the contract, validation, opening a dataset, the synthetic generator, atomic file
writes and the query engine. Imports nothing else of churnml's."""
