"""Issue rendering cost: MJML once per issue, then per-recipient personalisation.

    .venv/bin/python bench/render.py [--recipients 20000] [--repeat 5]

Renders a 10-item issue (image, category, title, date, summary, body, button
each) with newsletter.rendering.render_issue and times it (best of --repeat).
Then personalises it for N recipients with newsletter.rendering.personalise
(HTML-escaped name + unsubscribe URL, both the HTML and the text part) and
compares with the reference: two plain ``str.replace`` calls over the same HTML
per recipient, the least any substitution scheme can cost. No database needed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.core.settings import Settings
from newsletter.editorial.rendering import (
    RECIPIENT_NAME,
    UNSUBSCRIBE_URL,
    IssueContent,
    NewsItemContent,
    personalise,
    render_issue,
)


def sample_items() -> list[NewsItemContent]:
    return [
        NewsItemContent(
            title=f"김포시 소식 {n}: 한강 야간축제와 시민 참여 프로그램 안내",
            summary="김포시가 이번 달 시민 여러분께 알려 드리는 소식입니다. " * 2,
            body="<p>행사는 <strong>토요일 오후 6시</strong>부터 열립니다.</p>"
            "<ul><li>장소: 김포한강야외공연장</li><li>문의: 031-980-2114</li></ul>",
            link=f"https://www.gimpo.go.kr/news/{n}?from=newsletter&n={n}",
            image_url=f"https://www.gimpo.go.kr/images/news/{n}.jpg",
            category="행사",
            published_at=datetime(2026, 3, n, 9, tzinfo=UTC),
        )
        for n in range(1, 11)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    settings = Settings.from_env(
        {"NEWSLETTER_DEV": "1", "NEWSLETTER_BASE_URL": "https://newsletter.gimpo.go.kr"}
    )
    issue = IssueContent("2026년 3월 김포시 뉴스레터", "봄을 맞아 김포의 소식을 전합니다.", 12)
    items = sample_items()

    render_times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        rendered = render_issue(issue, items, settings)
        render_times.append(time.perf_counter() - start)

    names = [f"구독자{n}" if n % 3 else None for n in range(args.recipients)]
    urls = [
        f"https://newsletter.gimpo.go.kr/unsubscribe?token=MTIzNDU{n:06d}.abcdefghijklmnopqrstuv"
        for n in range(args.recipients)
    ]

    def personalise_all() -> float:
        start = time.perf_counter()
        for name, url in zip(names, urls, strict=True):
            personalise(rendered, unsubscribe_url=url, name=name)
        return time.perf_counter() - start

    def reference_all() -> float:
        html = rendered.html
        start = time.perf_counter()
        for name, url in zip(names, urls, strict=True):
            html.replace(UNSUBSCRIBE_URL, url).replace(RECIPIENT_NAME, name or "구독자")
        return time.perf_counter() - start

    ours = min(personalise_all() for _ in range(args.repeat))
    reference = min(reference_all() for _ in range(args.repeat))
    n = args.recipients
    print(f"issue: 10 items, HTML {len(rendered.html):,} chars, text {len(rendered.text):,} chars")
    print(
        f"render_issue (MJML + text, once per issue): best {min(render_times) * 1e3:.2f} ms, "
        f"median {statistics.median(render_times) * 1e3:.2f} ms"
    )
    print(
        f"personalise x {n:,} (HTML + text, escaped): {ours:.3f} s "
        f"= {ours / n * 1e6:.1f} µs/recipient, {n / ours:,.0f} recipients/s"
    )
    print(
        f"reference str.replace x {n:,} (HTML only): {reference:.3f} s "
        f"= {reference / n * 1e6:.1f} µs/recipient"
    )
    print(f"ratio personalise / reference: {ours / reference:.2f}x")
    print(
        f"ratio one MJML render / one personalisation: {min(render_times) / (ours / n):.0f}x "
        "(why MJML runs once per issue)"
    )


if __name__ == "__main__":
    main()
