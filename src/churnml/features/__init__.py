"""From validated tables to model rows: label times (observations), the point-in-time feature
build, its time windows and the feature catalog. Imports only `churnml.data`."""
