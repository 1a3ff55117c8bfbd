"""Reports: the terminal summary, JSON and HTML."""

PACKAGES = ("matplotlib", "jinja2")  # the `report` extra: the plots and the HTML template


def missing_packages() -> list[str]:
    """The `report` extra's packages that are not installed (found without importing them)."""
    from importlib.util import find_spec

    return [name for name in PACKAGES if find_spec(name) is None]
