"""A seeded synthetic dataset in the raw contract, with churn driven by planted, visible causes.

Customers are simulated week by week, vectorised with numpy over a chunk of customers
(a customers x weeks grid). Each customer carries a hidden dissatisfaction made of three parts:

- ``d_eng``: disengagement episodes (a drift that builds over a few weeks, then recovers);
- ``d_srv``: service-failure episodes (the same shape, but they show up in feedback);
- ``d_noise``: a mean-reverting random walk shared by every signal.

The observable tables follow it: events per week = base * exp(-a * d), orders per week =
base * exp(-b * d), survey scores fall and tickets / complaints rise with ``d_srv``. Plan and price
(basic plan, paying above list price, a recent price increase) add a direct term to the hazard.
The weekly churn hazard is ``sigmoid(h0 + k_eng*d_eng + k_srv*d_srv + k_noise*d_noise + price)``
plus a small constant random hazard, and each churn records which cause dominated it.

Chunks of customers are independent (each has its own seed derived from ``(seed, chunk index)``)
and are appended to the Parquet files as they are made, so memory stays bounded at any size.

The entry point is ``churnml.data.generate.dataset.generate_dataset``. One module per step, in the
order a chunk draws its random numbers (the order is what keeps a seed's output byte-identical):
``population`` (who the customers are), ``life_events`` (plan changes and price increases),
``latent`` (the hidden dissatisfaction), ``hazard`` (the weekly churn hazard, its causes and
returns), ``weekly`` (the week-by-week loop over those), ``activity`` (which days a customer is
active), ``events``, ``orders``, ``feedback``, ``subscriptions``; then ``tables`` (the Arrow
tables), ``chunk`` (one chunk end to end), ``summary`` and ``truth`` (ground_truth.json).
``parameters``, ``vocab`` and ``timeline`` hold the numbers, the vocabularies and the time units.

That is the ``mixed`` shape. ``subscription`` runs it with every customer subscribed and writes fewer
tables; ``orders`` (a retailer) is a different process, in ``retail`` and ``retail_truth``.
"""
