"""Every token method on random models and settings (hypothesis; see fuzz_checks for the properties).

`make test` runs a fixed sample per method; `VITPRUNE_FUZZ=1` (or `make fuzz`) runs 1,000 fresh ones.
"""

import pytest
from fuzz_checks import run_case
from fuzz_spaces import SPACES, cases
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("method", sorted(SPACES))
@given(data=st.data())
def test_generated_cases_hold_every_property(method, data):
    run_case(data.draw(cases(method), label="case"))
