"""The measures a retention team runs on: churn rate, cohort retention, purchase measures, CLV,
campaign targeting under a budget, campaign measurement and the retention report. Imports only
the packages below it (data, features, modeling, explain)."""
