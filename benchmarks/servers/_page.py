"""The data of the templated page, the same for every framework."""

import os

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
TITLE = "Squall & friends <benchmark>"
ITEMS = [{"id": i, "name": f"Item #{i} <&>", "price": f"{i * 3.25:.2f}"} for i in range(1, 11)]
