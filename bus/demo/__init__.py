"""``lgsp demo``: the whole bus on the embedded defaults, as a newcomer first sees it."""
