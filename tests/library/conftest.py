from collections.abc import Iterator

import pytest
from library_support import Library, database_url, library_app, settings_for


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def library(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Library]:
    """One app per module and backend; tests add their own catalogue rows."""
    data_dir = tmp_path_factory.mktemp("library")
    with database_url(request.param, data_dir) as url:
        with library_app(settings_for(data_dir, url)) as value:
            yield value
