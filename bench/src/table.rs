//! Plain-text tables and the number formats in their cells, for every table bench prints
//! (the run's, the deep pages', the soak's).
//!
//! Hand-written: [`render_table`] is thirty lines of padding, and a table crate (comfy-table)
//! would not make it shorter, only change the layout that readers and scripts know.

/// A plain-text table: the first `left` columns left-aligned, the rest right-aligned.
pub(crate) fn render_table(header: &[&str], left: usize, body: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in body {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            if i > 0 {
                text.push_str("  ");
            }
            if i < left {
                text.push_str(cell);
                text.push_str(&pad);
            } else {
                text.push_str(&pad);
                text.push_str(cell);
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in body {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A latency in µs, readably: `45.3 µs`, `812 µs`, `1.25 ms`, `2.10 s`.
pub(crate) fn fmt_latency(us: f64) -> String {
    let abs = us.abs();
    if abs < 100.0 {
        format!("{us:.1} µs")
    } else if abs < 1000.0 {
        format!("{us:.0} µs")
    } else if abs < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// A latency difference with its sign: `+12.0 µs`, `-3.5 µs`.
pub(crate) fn fmt_signed_latency(us: f64) -> String {
    if us >= 0.0 {
        format!("+{}", fmt_latency(us))
    } else {
        fmt_latency(us)
    }
}

/// Microseconds of CPU per request, whole (a dash when the process had nothing to do).
pub(crate) fn fmt_cpu(us: f64) -> String {
    if us < 0.5 {
        "-".to_owned()
    } else {
        format!("{us:.0}")
    }
}

/// Requests per second with thousands separators: `12,345`.
pub(crate) fn fmt_rate(per_second: f64) -> String {
    let n = per_second.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// KiB as MiB: `12.3 MiB`.
pub(crate) fn fmt_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
