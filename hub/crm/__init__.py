"""The company's CRM behind one small seam: backends pull the CRM into the crm_* mirror and
push what the hub decided through an outbox with an id map, exactly once (docs/crm.md)."""
