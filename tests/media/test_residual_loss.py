from media.residual_loss import ResidualLoss
from media.rtcp import RtcpReportBlock


def block(lost: int, highest: int, fraction: int = 0) -> RtcpReportBlock:
    return RtcpReportBlock(1, fraction_lost=fraction, packets_lost=lost, highest_sequence=highest)


def test_the_first_report_only_starts_the_window():
    assert ResidualLoss().update(0, block(5, 100)) is None


def test_a_window_shorter_than_a_report_interval_is_not_judged():
    r = ResidualLoss(window_ms=1500)
    r.update(0, block(0, 100))
    assert r.update(1000, block(50, 200)) is None
    assert r.update(1600, block(10, 300)) == 10 / 200


def test_repaired_packets_are_not_loss_whatever_fraction_lost_says():
    r = ResidualLoss(window_ms=1000)
    r.update(0, block(7, 100))
    # Raw loss 10 % in the report; the count went down as repairs arrived: nothing left.
    assert r.update(1000, block(4, 200, fraction=26)) == 0.0
    assert r.update(2000, block(4, 300, fraction=26)) == 0.0


def test_loss_counts_against_the_packets_expected_in_the_window():
    r = ResidualLoss(window_ms=1000)
    r.update(0, block(0, 1000))
    assert r.update(1000, block(5, 1100)) == 0.05
    assert r.update(2000, block(25, 1200)) == 0.2


def test_a_restarted_stream_starts_a_new_window():
    r = ResidualLoss(window_ms=1000)
    r.update(0, block(0, 70_000))
    assert r.update(1000, block(0, 10)) is None  # the extended sequence went back
    assert r.update(2000, block(1, 110)) == 0.01
