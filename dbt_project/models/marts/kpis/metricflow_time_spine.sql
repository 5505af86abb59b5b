{#- The day-grain time spine MetricFlow needs (dbt 1.9+ `time_spine:` config in
    _kpis__models.yml). A fixed, generated range: it reads no model, so it is built with the
    marts and published with them; 2000-01-01..2049-12-31 covers any as_of_date a run accepts
    (18,263 rows). -#}
select cast(day as date) as date_day
from (
    select unnest(generate_series(timestamp '2000-01-01', timestamp '2049-12-31', interval 1 day)) as day
)
