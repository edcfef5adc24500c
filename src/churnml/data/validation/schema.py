"""The schema of the raw tables: which tables and columns are there, and the plan of one table.

A missing table, a missing required column or a column with no values at all is a finding here
(always an error). The `Plan` of a
table holds its present contract columns (see `columns`), the customers' attribute columns, and the
schema findings; it builds the typed table every row check runs over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ibis

from churnml.data.contract import ACTIVITY_TABLES, CONTRACT, NULLABLE, TableMapping
from churnml.data.validation.columns import Column, type_column
from churnml.data.validation.findings import CONFIG, Finding

PRIVATE = "__churnml_"  # prefix of the private columns added while checking


@dataclass
class Plan:
    """One raw table as validation sees it: its present contract columns and schema findings."""

    name: str
    mapping: TableMapping
    raw: ibis.Table
    columns: dict[str, Column]  # contract name -> column (present in the file only)
    attributes: tuple[str, ...] = ()
    findings: list[Finding] = field(default_factory=list)

    def tcol(self, contract_name: str) -> str:
        return f"{PRIVATE}{contract_name}"

    def usable(self, contract_name: str) -> bool:
        col = self.columns.get(contract_name)
        return col is not None and col.usable

    def usable_of_kind(self, kind: str) -> list[tuple[str, Column, str]]:
        """(contract name, column, typed column name) of every usable column of a contract kind
        ("timestamp", "number", ...): what a check that applies to every such column walks."""
        return [(name, col, self.tcol(name)) for name, col in self.columns.items()
                if col.contract.kind == kind and col.usable]

    def label(self, contract_name: str) -> str:
        """How a column is named in messages: the user's name, and the contract's if different."""
        col = self.columns.get(contract_name)
        source = col.source if col else self.mapping.source_name(contract_name)
        if source == contract_name:
            return f"'{source}'"
        return f"'{source}' (contract column '{contract_name}')"

    @property
    def typed(self) -> ibis.Table:
        """The raw table plus private columns per present contract column: its contract-typed
        value, whether the raw value is missing, and (where parsing can fail) whether it failed."""
        values: dict[str, ibis.Value] = {}
        for n, c in self.columns.items():
            values[self.tcol(n)] = c.typed
            values[f"{PRIVATE}missing_{n}"] = c.missing
            if c.fail is not None:
                values[f"{PRIVATE}fail_{n}"] = c.fail
        return self.raw.mutate(**values)

    @property
    def example_columns(self) -> list[str]:
        names: list[str] = []
        for col in self.columns.values():
            if col.source not in names:
                names.append(col.source)
        return names

    def output(self, table: ibis.Table) -> ibis.Table:
        """Contract names and types (+ customers' attributes), from a typed or wide table."""
        selection: dict[str, ibis.Value] = {n: table[self.tcol(n)] for n in self.columns}
        for attr in self.attributes:
            selection[attr] = table[attr]
        return table.select(**selection)


def missing_tables(
    raw: dict[str, ibis.Table], mappings: dict[str, TableMapping], reported: frozenset[str] = frozenset()
) -> list[Finding]:
    """A finding when the customers table is missing, and one when no activity table is there.

    `mappings` name the files looked for; tables in `reported` (a file that exists but could not be
    read, already a finding) are not called missing again.
    """
    findings: list[Finding] = []
    if "customers" not in raw and "customers" not in reported:
        mapping = mappings.get("customers")
        where = f"there is no {mapping.file} in the dataset folder" if mapping else "tables.customers is null"
        findings.append(
            Finding(
                check="missing_table",
                table="customers",
                column=None,
                count=1,
                severity="error",
                message=(
                    f"table 'customers' is missing ({where}): the contract requires it (customer_id, "
                    "signup_date) and every other table is checked against it."
                ),
                hint=(
                    f"Add the customers file to the dataset folder, or point tables.customers.file "
                    f"at it in {CONFIG}."
                ),
            )
        )
    if not (set(raw) | reported) & set(ACTIVITY_TABLES):
        looked = [mappings[t].file for t in ACTIVITY_TABLES if t in mappings]
        where = f" (looked for {', '.join(looked)})" if looked else " (every activity table is null in tables)"
        findings.append(
            Finding(
                check="missing_table",
                table="activity",
                column=None,
                count=1,
                severity="error",
                message=(
                    f"no activity table was found{where}: the contract needs at least one of "
                    f"{', '.join(ACTIVITY_TABLES)} besides customers."
                ),
                hint=f"Add an activity file to the dataset folder and map it under tables.<name> in {CONFIG}.",
            )
        )
    return findings


def empty_columns(con: ibis.BaseBackend, plan: Plan) -> list[Finding]:
    """empty_column: a required contract column (or a customers attribute) with no value in any
    row of a non-empty table; such contract columns are marked unusable, so that no row check
    reports the same rows again. One pass over the table."""
    names = [n for n in plan.columns if plan.columns[n].contract.required and n not in NULLABLE.get(plan.name, ())]
    typed = plan.typed
    counts = {f"c{i}": (~typed[f"{PRIVATE}missing_{n}"]).cast("int64").sum() for i, n in enumerate(names)}
    counts |= {f"a{i}": typed[a].notnull().cast("int64").sum() for i, a in enumerate(plan.attributes)}
    row = con.to_pyarrow(typed.aggregate(rows=typed.count(), **counts)).to_pylist()[0]
    rows = int(row["rows"] or 0)
    if rows == 0:  # an empty table keeps its types and passes: there is nothing to be wrong
        return []
    findings = []
    for i, name in enumerate(names):
        if not row[f"c{i}"]:
            plan.columns[name].usable = False
            findings.append(_empty_column(plan, name, rows))
    for i, attr in enumerate(plan.attributes):
        if not row[f"a{i}"]:
            findings.append(_empty_attribute(plan, attr, rows))
    return findings


def _empty_column(plan: Plan, name: str, rows: int) -> Finding:
    source = plan.columns[name].source
    return Finding(
        check="empty_column",
        table=plan.name,
        column=name,
        count=rows,
        severity="error",
        message=(
            f"table '{plan.name}', column {plan.label(name)} has no non-null values in any of its "
            f"{rows:,} rows, and the contract requires it."
        ),
        hint=(
            f"Fill {source} in the {plan.name} file (an export that left it out?), or map "
            f"tables.{plan.name}.columns.{name} to the column that holds it in {CONFIG}."
        ),
    )


def _empty_attribute(plan: Plan, attr: str, rows: int) -> Finding:
    listed = plan.mapping.attributes is not None
    return Finding(
        check="empty_column",
        table=plan.name,
        column=attr,
        count=rows,
        severity="error",
        message=(
            f"customers.{attr} (source column '{attr}') has no non-null values in any of its {rows:,} "
            "rows, so its type cannot be known and it cannot be a feature."
        ),
        hint=(
            f"Drop it from tables.customers.attributes in {CONFIG} or fill it."
            if listed
            else f"Fill it, or list the attributes to keep in tables.customers.attributes in {CONFIG} (without it)."
        ),
    )


def plan_table(name: str, raw: ibis.Table, mapping: TableMapping) -> Plan:
    """The plan of one raw table: its present contract columns typed, its attributes (customers
    only) and a finding for every missing required or listed column."""
    contract = CONTRACT[name]
    schema = raw.schema()
    present = list(schema.names)
    plan = Plan(name=name, mapping=mapping, raw=raw, columns={})

    for ccol in contract.columns:
        source = mapping.source_name(ccol.name)
        if source not in schema:
            if ccol.required:
                plan.findings.append(_missing_column(name, ccol.name, source, present))
            continue
        plan.columns[ccol.name] = type_column(ccol, source, raw[source], schema[source])

    if name == "customers":
        sources = {mapping.source_name(c.name) for c in contract.columns}
        contract_names = {c.name for c in contract.columns}
        if mapping.attributes is None:
            plan.attributes = tuple(c for c in present if c not in sources and c not in contract_names)
        else:
            clash = [a for a in mapping.attributes if a in contract_names]
            if clash:
                raise ValueError(
                    f"tables.customers.attributes: {clash} clash with contract column names; "
                    "rename them in the file"
                )
            for attr in mapping.attributes:
                if attr not in schema:
                    plan.findings.append(
                        Finding(
                            check="missing_column",
                            table=name,
                            column=attr,
                            count=1,
                            severity="error",
                            message=(
                                f"table 'customers' has no attribute column '{attr}', which is listed "
                                f"in tables.customers.attributes (columns present: {', '.join(present)})."
                            ),
                            hint=(
                                f"Add '{attr}' to the customers file, or remove it from "
                                f"tables.customers.attributes in {CONFIG}."
                            ),
                        )
                    )
            plan.attributes = tuple(a for a in mapping.attributes if a in schema)
    return plan


def _missing_column(table: str, contract_name: str, source: str, present: list[str]) -> Finding:
    mapped = f" (mapped from contract column '{contract_name}')" if source != contract_name else ""
    return Finding(
        check="missing_column",
        table=table,
        column=contract_name,
        count=1,
        severity="error",
        message=(
            f"table '{table}' has no column '{source}'{mapped}, which the contract requires; "
            f"columns present: {', '.join(present)}."
        ),
        hint=(
            f"Add the column to the {table} file, or map your own column to it in {CONFIG}: "
            f"tables.{table}.columns.{contract_name}: <your column name>."
        ),
    )
