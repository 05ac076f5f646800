//! What the planner tells the model: the rules of a plan, the goal, the plan's input and
//! the agents on offer; and, for a repair, what was wrong with its answer.
//!
//! The answer's shape is also sent as a JSON Schema (structured output), but providers
//! differ in how strictly they hold to one, so the rules are spelled out here too, and
//! the answer is checked whatever the provider did.

use std::fmt::Write as _;

use serde_json::Value;

use crate::domain::workflow::{KnownNames, Problem};
use crate::domain::AgentSpec;

/// Characters of the plan's input shown to the model; a larger input is cut, since the
/// planned steps read it through templates and need its shape, not all of it.
const INPUT_SHOWN: usize = 4000;

pub(super) fn messages(
    goal: &str,
    input: &Value,
    agents: &[&AgentSpec],
    allowed: &KnownNames,
    max_steps: usize,
) -> Vec<crate::ports::model::ChatMessage> {
    use crate::ports::model::{ChatMessage, Role};
    vec![
        ChatMessage::new(Role::System, rules(max_steps)),
        ChatMessage::new(Role::User, task(goal, input, agents, allowed)),
    ]
}

fn rules(max_steps: usize) -> String {
    format!(
        "You plan work for a workflow engine. Break the goal into at most {max_steps} steps, each run by \
         one of the agents listed. Answer with one JSON object and nothing else:\n\
         {{\"steps\": [{{\"id\": \"…\", \"agent\": \"…\", \"input\": {{…}}, \"depends_on\": [\"…\"]}}]}}\n\
         - id: unique; lowercase letters, digits and _, starting with a letter.\n\
         - agent: the name of an agent you may name; or, instead of agent, capability: a capability \
         you may ask for (any agent that has it runs the step).\n\
         - input: the JSON the agent receives. Its strings may be templates: \"{{{{ input.KEY }}}}\" \
         reads the plan's input, \"{{{{ steps.ID.output }}}}\" (or .output.FIELD) the output of an \
         earlier step. A string that is exactly one {{{{ … }}}} keeps the value's type.\n\
         - depends_on: the ids of the steps that must finish first. A step whose output a template \
         reads must be listed there.\n\
         Steps run as soon as the steps they depend on are done. Use as few steps as the goal allows."
    )
}

fn task(goal: &str, input: &Value, agents: &[&AgentSpec], allowed: &KnownNames) -> String {
    let mut text = format!("Goal: {goal}\n\nThe plan's input (templates read it as input):\n");
    let shown = input.to_string();
    if shown.chars().count() > INPUT_SHOWN {
        let cut: String = shown.chars().take(INPUT_SHOWN).collect();
        let _ = writeln!(text, "{cut}… (cut)");
    } else {
        let _ = writeln!(text, "{shown}");
    }
    let names = allowed.agents.clone().unwrap_or_default();
    let capabilities = allowed.capabilities.clone().unwrap_or_default();
    text.push_str("\nAgents:\n");
    for agent in agents {
        let how = if names.contains(&agent.name) { "may be named" } else { "only through a capability" };
        let _ = write!(text, "- {} ({how})", agent.name);
        if !agent.description.is_empty() {
            let _ = write!(text, ": {}", agent.description);
        }
        let offered: Vec<&str> =
            agent.capabilities.iter().filter(|c| capabilities.contains(*c)).map(String::as_str).collect();
        if !offered.is_empty() {
            let _ = write!(text, " [capabilities: {}]", offered.join(", "));
        }
        text.push('\n');
    }
    if capabilities.is_empty() {
        text.push_str("\nAsk for no capability: name agents.\n");
    }
    text
}

/// The follow-up that shows the model why its answer cannot run.
pub(super) fn repair(problems: &[Problem]) -> String {
    let mut text = String::from("That plan cannot run:\n");
    for problem in problems {
        let _ = writeln!(text, "- {problem}");
    }
    text.push_str("Answer again with the whole corrected plan: one JSON object, nothing else.");
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::AgentSpec;

    #[test]
    fn the_task_lists_what_the_plan_may_use_and_cuts_a_large_input() {
        let echo = AgentSpec::native("echo").capability("text.echo").description("Echoes its input.");
        let upper = AgentSpec::native("upper").capability("text.upper");
        let allowed = KnownNames::empty().with_agent("upper", ["text.upper"]);
        let allowed = KnownNames { capabilities: Some(["text.echo".to_string()].into()), ..allowed };
        let text = task("shout it", &json!({"text": "hi"}), &[&echo, &upper], &allowed);
        assert!(text.starts_with("Goal: shout it\n"), "{text}");
        assert!(text.contains("{\"text\":\"hi\"}"), "{text}");
        assert!(
            text.contains("- echo (only through a capability): Echoes its input. [capabilities: text.echo]"),
            "{text}"
        );
        assert!(text.contains("- upper (may be named)\n"), "a capability not on offer is not shown: {text}");

        let big = json!({"text": "x".repeat(INPUT_SHOWN * 2)});
        let text = task("g", &big, &[&upper], &allowed);
        assert!(text.contains("… (cut)") && text.len() < INPUT_SHOWN + 500, "{}", text.len());
    }

    #[test]
    fn a_repair_names_every_problem_where_it_is() {
        let text = repair(&[Problem::new("/steps/0/agent", "no agent is named \"ghost\"")]);
        assert!(text.contains("- no agent is named \"ghost\" (at /steps/0/agent)\n"), "{text}");
    }
}
