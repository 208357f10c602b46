"""Local servers that replay external systems' documented APIs (paging, limits, failures): the
demo runs against them, and the tests use the same ones."""
