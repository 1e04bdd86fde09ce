"""Flows at run time: definitions and their checks, the durable executor, cards and analytics effects.

`flows.definition` checks a flow or card template before it is saved;
`flows.program` compiles a flow; `flows.batch` runs one executor transaction;
`flows.executor` loops over batches (inside `flowhook serve`, or alone in
`flowhook worker`: flowhook.worker).
"""
