"""Batch scoring of a whole customer base, and feature drift against the training profile.
Imports only the packages below it (data, features, modeling, explain)."""
