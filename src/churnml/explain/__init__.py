"""Why a customer is at risk: exact TreeSHAP, per-customer reasons, global and segment drivers,
and the drivers HTML report. Imports only the packages below it (data, features, modeling)."""
