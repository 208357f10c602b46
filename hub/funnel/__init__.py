"""The sales funnel from stage history, the morning checks of a head of sales, and the plan from
the facts."""
