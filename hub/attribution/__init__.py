"""Lead-source attribution: touches per contact, the six attribution models, the channel report
with paid revenue and ad cost."""
