import squall


def test_version() -> None:
    assert isinstance(squall.version, str)
    assert squall.version_info[:3] == tuple(int(p) for p in squall.version.split("."))
