//! The HTML report of `slipway drift --html`: one self-contained page (no scripts, no network)
//! with the verdict table and, per column, the reference and current distributions overlaid.

use std::fmt::Write;

use monitor::drift::{Column, DatasetDrift};

pub(crate) fn report(
    reference: &str,
    current: &str,
    d: &DatasetDrift,
    columns: &[Column],
) -> String {
    let mut out = String::new();
    let verdict = if d.drift { "drifted" } else { "did not drift" };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Drift: {cur}</title>\
         <style>{CSS}</style></head><body><h1>Drift report</h1>\
         <p class=\"lede\">Reference <code>{r}</code>, current <code>{cur}</code>: \
         {n} of {total} columns drifted ({share:.0}%, threshold {thr:.0}%), so the table \
         <strong class=\"{cls}\">{verdict}</strong>.</p><table><thead><tr><th>Column</th><th>Type</th>\
         <th>Test</th><th>Statistic</th><th class=\"num\">Value</th><th class=\"num\">Threshold</th>\
         <th>Verdict</th><th class=\"num\">Rows (ref / cur)</th></tr></thead><tbody>",
        r = esc(reference),
        cur = esc(current),
        n = d.drifted,
        total = d.columns.len(),
        share = d.share * 100.0,
        thr = d.share_threshold * 100.0,
        cls = if d.drift { "drift" } else { "ok" },
    );
    for (i, c) in d.columns.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td><a href=\"#c-{id}\">{name}</a></td><td>{kind}</td><td>{test}</td><td>{stat}</td>\
             <td class=\"num\">{value:.6}</td><td class=\"num\">{thr}</td><td class=\"{cls}\">{v}</td>\
             <td class=\"num\">{nr} / {nc}</td></tr>",
            id = i,
            name = esc(&c.column),
            kind = c.kind.as_str(),
            test = c.test.name(),
            stat = c.statistic_name,
            value = c.statistic,
            thr = c.threshold,
            cls = if c.drift { "drift" } else { "ok" },
            v = if c.drift { "drift" } else { "ok" },
            nr = c.reference_rows,
            nc = c.current_rows,
        );
    }
    out.push_str("</tbody></table>");
    for (i, (c, verdict)) in columns.iter().zip(&d.columns).enumerate() {
        let d = monitor::drift::distribution(c);
        let _ = write!(
            out,
            "<section id=\"c-{id}\"><h2>{name} <span class=\"{cls}\">{v}</span></h2>\
             <p class=\"note\">{test}: {stat} {value:.6} (threshold {thr}). Shares of each side's rows; \
             <span class=\"ref\">■</span> reference, <span class=\"cur\">■</span> current.</p>{svg}</section>",
            id = i,
            name = esc(&c.name),
            cls = if verdict.drift { "drift" } else { "ok" },
            v = if verdict.drift { "drift" } else { "ok" },
            test = verdict.test.name(),
            stat = verdict.statistic_name,
            value = verdict.statistic,
            thr = verdict.threshold,
            svg = bars(&d.bins, &d.reference, &d.current),
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// Two bars per bin, reference and current, as inline SVG.
fn bars(labels: &[String], r: &[f64], k: &[f64]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let (w, h, pad) = (760.0, 220.0, 30.0);
    let top = r.iter().chain(k).copied().fold(0.0, f64::max).max(1e-12);
    let slot = (w - 2.0 * pad) / labels.len() as f64;
    let bar = (slot * 0.4).clamp(1.0, 36.0);
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {}\" role=\"img\" width=\"{w}\" height=\"{}\">",
        h + 60.0,
        h + 60.0
    );
    for (i, label) in labels.iter().enumerate() {
        let x = pad + i as f64 * slot;
        for (j, (share, cls)) in [(r[i], "ref"), (k[i], "cur")].into_iter().enumerate() {
            let bh = share / top * (h - pad);
            let _ = write!(
                svg,
                "<rect class=\"{cls}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\">\
                 <title>{}: {:.2}%</title></rect>",
                x + j as f64 * bar,
                h - bh,
                esc(label),
                share * 100.0
            );
        }
        if labels.len() <= 12 || i % (labels.len() / 8).max(1) == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" transform=\"rotate(30 {:.1} {:.1})\">{}</text>",
                x,
                h + 14.0,
                x,
                h + 14.0,
                esc(&truncate(label, 18))
            );
        }
    }
    let _ = write!(
        svg,
        "<line x1=\"{pad}\" y1=\"{h}\" x2=\"{}\" y2=\"{h}\" class=\"axis\"/></svg>",
        w - pad
    );
    svg
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:820px;color:#1d2330}\
table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #e3e6ec;text-align:left}\
.num{text-align:right;font-variant-numeric:tabular-nums}.drift{color:#b3261e;font-weight:600}.ok{color:#2e7d32}\
rect.ref{fill:#8aa4c8}rect.cur{fill:#e0894a}span.ref{color:#8aa4c8}span.cur{color:#e0894a}\
text{font-size:10px;fill:#555}.axis{stroke:#999}.note{color:#555}code{background:#f3f4f7;padding:1px 4px}";
