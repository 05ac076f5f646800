//! The final answer of an LLM agent against its `output_schema`.

use serde_json::Value;

/// An answer checked against a compiled output schema.
pub struct OutputSchema {
    schema: Value,
    validator: jsonschema::Validator,
}

impl OutputSchema {
    pub fn compile(schema: &Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| format!("llm.output_schema: not a usable JSON Schema: {e}"))?;
        Ok(OutputSchema { schema: schema.clone(), validator })
    }

    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The answer as JSON if it matches, else what is wrong with it (at most five
    /// problems, for the repair prompt and the task's error).
    pub fn check(&self, answer: &str) -> Result<Value, String> {
        let text = strip_code_fence(answer);
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("the answer is not JSON ({e}): {}", preview(text)))?;
        let problems: Vec<String> = self
            .validator
            .iter_errors(&value)
            .take(5)
            .map(|e| {
                let at = e.instance_path().as_str().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{e} at '{at}'")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(value)
        } else {
            Err(format!("the answer does not match the output schema: {}", problems.join("; ")))
        }
    }
}

/// Models often wrap JSON in a Markdown fence even when asked not to.
fn strip_code_fence(answer: &str) -> &str {
    let trimmed = answer.trim();
    let Some(body) = trimmed.strip_prefix("```") else { return trimmed };
    let body = body.split_once('\n').map_or("", |(_language, rest)| rest);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

fn preview(text: &str) -> String {
    let mut shown: String = text.chars().take(200).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_parsed_and_checked() {
        let schema = OutputSchema::compile(&json!({
            "type": "object", "required": ["score"],
            "properties": {"score": {"type": "integer", "maximum": 10}}
        }))
        .unwrap();
        assert_eq!(schema.check(r#"{"score": 7}"#), Ok(json!({"score": 7})));
        assert_eq!(schema.check("```json\n{\"score\": 3}\n```"), Ok(json!({"score": 3})));
        let wrong = schema.check(r#"{"score": 11}"#).unwrap_err();
        assert!(wrong.contains("does not match") && wrong.contains("/score"), "{wrong}");
        let missing = schema.check("{}").unwrap_err();
        assert!(missing.contains("score"), "{missing}");
        assert!(schema.check("seven").unwrap_err().contains("not JSON"));
    }
}
