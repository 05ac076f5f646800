//! What runs before what: dependency cycles, and what each template reads, checked
//! against the steps that are done by the time it is evaluated.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Validator;
use crate::domain::workflow::template::{TemplateError, Usage};

impl Validator<'_> {
    /// Dependency cycles, each named once by its steps.
    pub(super) fn cycles(&mut self) {
        let steps = &self.def.steps;
        // Edges i → j: step i depends on step j (entry k of its depends_on).
        let edges: Vec<Vec<(usize, usize)>> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.depends_on
                    .iter()
                    .enumerate()
                    .filter_map(|(k, d)| self.ids.get(d.as_str()).filter(|&&j| j != i).map(|&j| (j, k)))
                    .collect()
            })
            .collect();
        // 0: not seen, 1: on the path, 2: done. Iterative, so a long chain cannot overflow.
        let mut color = vec![0u8; steps.len()];
        let mut seen_cycles = BTreeSet::new();
        for start in 0..steps.len() {
            if color[start] != 0 {
                continue;
            }
            color[start] = 1;
            let mut path = vec![(start, 0usize)];
            while let Some(&(node, next)) = path.last() {
                let Some(&(to, entry)) = edges[node].get(next) else {
                    color[node] = 2;
                    path.pop();
                    continue;
                };
                path.last_mut().expect("the path is not empty").1 += 1;
                match color[to] {
                    0 => {
                        color[to] = 1;
                        path.push((to, 0));
                    }
                    1 => {
                        let from = path.iter().position(|&(n, _)| n == to).expect("`to` is on the path");
                        let cycle: Vec<usize> = path[from..].iter().map(|&(n, _)| n).collect();
                        let members: BTreeSet<usize> = cycle.iter().copied().collect();
                        if seen_cycles.insert(members) {
                            let mut names: Vec<&str> = cycle.iter().map(|&n| steps[n].id.as_str()).collect();
                            names.push(&steps[to].id);
                            self.problem(
                                format!("/steps/{node}/depends_on/{entry}"),
                                format!(
                                    "these steps depend on each other in a cycle, so none can start: {} \
                                     (→ reads \"depends on\"); remove one of these depends_on entries",
                                    names.join(" → ")
                                ),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Templates that do not compile, and what the ones that do read.
    pub(super) fn references(&mut self) {
        let def = self.def;
        let steps = &def.steps;
        let before = self.predecessors();
        for (i, step) in steps.iter().enumerate() {
            let ancestors = Self::ancestors(&before, i);
            let scope = Scope::Step { index: i, ancestors: &ancestors };
            let at = format!("/steps/{i}");
            for (key, text) in [("when", &step.when), ("for_each", &step.for_each)] {
                if let Some(text) = text {
                    let here = format!("{at}/{key}");
                    match self.templates.references(text, Usage::Expression) {
                        Ok(refs) => self.read(&here, &refs, scope, Items::Not(key)),
                        Err(e) => self.problem(here, compile_message(&e)),
                    }
                }
            }
            if let Some(plan) = &step.plan {
                let here = format!("{at}/plan/goal");
                match self.templates.references(&plan.goal, Usage::Value) {
                    Ok(refs) => self.read(&here, &refs, scope, Items::Not("goal")),
                    Err(e) => self.problem(here, compile_message(&e)),
                }
            }
            if let Some(input) = &step.input {
                let items = if step.for_each.is_some() { Items::Allowed } else { Items::NoForEach };
                self.value(&format!("{at}/input"), input, scope, items);
            }
        }
        if let Some(output) = &def.output {
            self.value("/output", output, Scope::Output, Items::Not("output"));
        }
    }

    /// The templates of an `input` or `output` value, each string on its own.
    fn value(&mut self, at: &str, value: &Value, scope: Scope<'_>, items: Items) {
        for (pointer, found) in self.templates.string_references(value) {
            let here = format!("{at}{pointer}");
            match found {
                Ok(refs) => self.read(&here, &refs, scope, items),
                Err(e) => self.problem(here, compile_message(&e)),
            }
        }
    }

    /// Steps whose state exists when step `i` starts: its dependencies, and the steps whose
    /// failure routes to it, transitively. `before[n]` are the direct ones of step `n`.
    fn ancestors(before: &[Vec<usize>], i: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = before[i].clone();
        while let Some(n) = todo.pop() {
            if n != i && seen.insert(n) {
                todo.extend(&before[n]);
            }
        }
        seen
    }

    /// For each step, the steps done right before it may start: its dependencies and the
    /// steps whose `on_error` routes to it.
    fn predecessors(&self) -> Vec<Vec<usize>> {
        let steps = &self.def.steps;
        let mut before: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| s.depends_on.iter().filter_map(|d| self.ids.get(d.as_str()).copied()).collect())
            .collect();
        for (k, step) in steps.iter().enumerate() {
            if let Some(&target) = step.on_error.route().and_then(|r| self.ids.get(r)) {
                before[target].push(k);
            }
        }
        before
    }

    /// Checks the variables one template (or one value's templates) reads.
    fn read(&mut self, at: &str, refs: &BTreeSet<String>, scope: Scope<'_>, items: Items) {
        for path in refs {
            let mut parts = path.split('.');
            let root = parts.next().unwrap_or_default();
            match root {
                "input" => {}
                "run" => {
                    if let Some(field) = parts.next().filter(|f| !matches!(*f, "id" | "workflow" | "version"))
                    {
                        self.problem(
                            at,
                            format!("run.{field} does not exist: run has id, workflow and version"),
                        );
                    }
                }
                "item" | "index" => match items {
                    Items::Allowed => {}
                    Items::NoForEach => self.problem(
                        at,
                        format!(
                            "{root} is only defined in a for_each step: add for_each, or read input or steps"
                        ),
                    ),
                    Items::Not(key) => self.problem(
                        at,
                        format!(
                            "{root} is not defined in {key}: it is the current item of a for_each, seen only \
                             by that step's input"
                        ),
                    ),
                },
                "steps" => {
                    let Some(id) = parts.next() else { continue };
                    let field = parts.next();
                    self.read_step(at, id, field, scope);
                }
                name if self.templates.is_global(name) => {}
                name => {
                    let message = format!(
                        "{name} is not defined: templates read input, steps.<id>.output|state|error, \
                         run, and item and index in a for_each step"
                    );
                    self.problem(at, message);
                }
            }
        }
    }

    fn read_step(&mut self, at: &str, id: &str, field: Option<&str>, scope: Scope<'_>) {
        let Some(&target) = self.ids.get(id) else {
            let message = format!("steps.{id}: there is no step {id:?}; steps are {}", self.step_list());
            return self.problem(at, message);
        };
        if let Some(field) = field.filter(|f| !matches!(*f, "output" | "state" | "error")) {
            let message = format!(
                "steps.{id}.{field} does not exist: a step has output, state and error (did you mean \
                 steps.{id}.output.{field}?)"
            );
            return self.problem(at, message);
        }
        let what = field.unwrap_or("output");
        if let Scope::Step { index, ancestors } = scope {
            let me = &self.def.steps[index].id;
            if target == index {
                let message =
                    format!("a step cannot read its own {what}: it does not exist before the step runs");
                self.problem(at, message);
            } else if !ancestors.contains(&target) {
                let message = format!(
                    "the {what} of {id} cannot exist yet when {me} runs: add {id} to depends_on of {me}"
                );
                self.problem(at, message);
            }
        }
    }
}

/// Where a template is, for what it may read.
#[derive(Clone, Copy)]
enum Scope<'s> {
    /// In step `index`, which may read the steps in `ancestors`.
    Step { index: usize, ancestors: &'s BTreeSet<usize> },
    /// The run's output: every step is done.
    Output,
}

/// Whether `item` and `index` are defined.
#[derive(Clone, Copy)]
enum Items {
    Allowed,
    /// In the input of a step without for_each.
    NoForEach,
    /// In this key, evaluated once per step or run.
    Not(&'static str),
}

fn compile_message(e: &TemplateError) -> String {
    format!(
        "this template does not compile: {e}; write values as {{{{ expression }}}} and statements \
         as {{% … %}}"
    )
}
