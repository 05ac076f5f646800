//! Jupyter notebooks: their code cells as one Python source. Lines are counted in that
//! joined source; IPython magics and shell escapes become comments so the rest parses.

use serde::Deserialize;

#[derive(Deserialize)]
struct Notebook {
    #[serde(default)]
    cells: Vec<Cell>,
}

#[derive(Deserialize)]
struct Cell {
    cell_type: String,
    #[serde(default)]
    source: Source,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Source {
    Lines(Vec<String>),
    Text(String),
    #[default]
    Empty,
}

/// The notebook's code cells joined, or why it is not a notebook.
pub fn code(text: &str) -> Result<String, serde_json::Error> {
    let notebook: Notebook = serde_json::from_str(text)?;
    let mut out = String::new();
    for cell in notebook.cells.iter().filter(|c| c.cell_type == "code") {
        let source = match &cell.source {
            Source::Lines(lines) => lines.concat(),
            Source::Text(text) => text.clone(),
            Source::Empty => continue,
        };
        for line in source.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with('%') || trimmed.starts_with('!') {
                out.push('#');
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn code_cells_are_joined_and_magics_commented_out() {
        let nb = r#"{"cells": [
            {"cell_type": "markdown", "source": ["client.chat.completions.create()"]},
            {"cell_type": "code", "source": ["%pip install openai\n", "from openai import OpenAI\n"]},
            {"cell_type": "code", "source": "!ls\nclient = OpenAI()"}
        ]}"#;
        assert_eq!(
            super::code(nb).unwrap(),
            "#%pip install openai\nfrom openai import OpenAI\n\n#!ls\nclient = OpenAI()\n\n"
        );
        assert!(super::code("not json").is_err());
    }
}
