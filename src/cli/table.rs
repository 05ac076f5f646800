//! Human-readable tables: a header line, then one line per row, columns padded to the
//! widest cell.

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&headers).chain(rows) {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let rows = vec![vec!["a".to_string(), "long value".into()], vec!["bbb".into(), "x".into()]];
        assert_eq!(super::render(&["ID", "V"], &rows), "ID   V\na    long value\nbbb  x\n");
    }
}
