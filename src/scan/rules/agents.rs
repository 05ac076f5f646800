//! Rule tables for agents, tools, MCP servers and clients, their transports, and agent
//! graphs (`agents.toml`), and the index that finds the rules a symbol triggers.

use serde::Deserialize;

use super::{ArgRef, SymbolIndex};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRule {
    pub framework: String,
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Decorators of a function that returns the agent (CrewAI's `@agent`).
    #[serde(default)]
    pub decorators: Vec<String>,
    #[serde(default)]
    pub name: Vec<ArgRef>,
    #[serde(default)]
    pub role: Vec<ArgRef>,
    #[serde(default)]
    pub goal: Vec<ArgRef>,
    #[serde(default)]
    pub instructions: Vec<ArgRef>,
    #[serde(default)]
    pub model: Vec<ArgRef>,
    #[serde(default)]
    pub tools: Vec<ArgRef>,
    #[serde(default)]
    pub handoffs: Vec<ArgRef>,
    /// Where the guardrails checking its input are given (a list; `[[guardrail]]` rules
    /// name each item).
    #[serde(default)]
    pub input_guardrails: Vec<ArgRef>,
    /// Where the guardrails checking its final output are given.
    #[serde(default)]
    pub output_guardrails: Vec<ArgRef>,
    /// Where a wrapper (`AgentExecutor(agent=…)`) is given the agent it runs: when that
    /// agent is found, the wrapper is the same agent, not another.
    #[serde(default)]
    pub wraps: Vec<ArgRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    pub framework: String,
    /// Decorators that make the function a tool.
    #[serde(default)]
    pub decorators: Vec<String>,
    /// Decorators that are a method of an object (`@mcp.tool()` on a `FastMCP`).
    #[serde(default)]
    pub decorator_on: Vec<String>,
    #[serde(default)]
    pub decorator_methods: Vec<String>,
    /// Base classes that make a class a tool (its `name` and `description` attributes).
    #[serde(default)]
    pub bases: Vec<String>,
    /// Calls that make a tool.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Methods that register a tool on an object (`server.registerTool(…)`).
    #[serde(default)]
    pub on: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub name: Vec<ArgRef>,
    #[serde(default)]
    pub description: Vec<ArgRef>,
    /// Option calls among the arguments whose first argument is the description
    /// (mcp-go's `mcp.WithDescription("…")`).
    #[serde(default)]
    pub description_option: Vec<String>,
    /// Where the implementing function is passed.
    #[serde(default)]
    pub function: Vec<ArgRef>,
}

/// What makes a guardrail, so an agent's guardrail list can name its items: decorators
/// of a function (`@input_guardrail(name=…)`) or constructions
/// (`InputGuardrail(guardrail_function=f, name=…)`). Without a `name`, a guardrail is
/// named after its function.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailRule {
    pub framework: String,
    #[serde(default)]
    pub decorators: Vec<String>,
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Where the decorator or construction is given the guardrail's name.
    #[serde(default)]
    pub name: Vec<ArgRef>,
    /// Where a construction is given the implementing function.
    #[serde(default)]
    pub function: Vec<ArgRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpRule {
    /// `mcp_server` or `mcp_client`.
    pub kind: String,
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Attributes of an impl block that serves tools (rmcp's `#[tool_router]`).
    #[serde(default)]
    pub decorators: Vec<String>,
    #[serde(default)]
    pub name: Vec<ArgRef>,
    /// Where a construction holding the name is given, when it is not the call's own
    /// argument (the Go SDK's `mcp.NewClient(&mcp.Implementation{Name: …}, nil)`).
    #[serde(default)]
    pub name_in: Vec<ArgRef>,
    /// Whether a finding without a declared name is named after the variable the call is
    /// bound to; not where that call makes something else (rmcp's transport).
    #[serde(default = "yes")]
    pub name_from_variable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportRule {
    /// The transport, or `argument`: named by the call's `arg`, else `default`.
    pub transport: String,
    #[serde(default)]
    pub symbols: Vec<String>,
    #[serde(default)]
    pub on: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub arg: Vec<ArgRef>,
    pub default: Option<String>,
    /// Where a client transport is given the server it starts or connects to: a command
    /// or URL literal, or a call spelling one (`exec.Command("npx", "-y", pkg)`,
    /// `new URL("http://…")`, `Command::new("npx").arg("-y")`).
    #[serde(default)]
    pub target: Vec<ArgRef>,
    /// Where the command's arguments are given as a list (`args=["server.py"]`).
    #[serde(default)]
    pub target_args: Vec<ArgRef>,
    /// The position from which the remaining positional arguments are the command's
    /// arguments (mcp-go's `NewStdioMCPClient(command, env, args...)`).
    pub target_rest: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphRule {
    pub framework: String,
    pub symbols: Vec<String>,
    #[serde(default)]
    pub add_node: Vec<String>,
    #[serde(default)]
    pub add_edge: Vec<String>,
    #[serde(default)]
    pub conditional: Vec<String>,
    #[serde(default)]
    pub entry: Vec<String>,
    #[serde(default)]
    pub finish: Vec<String>,
    /// Where a team's member agents are given (`Crew(agents=[…])`).
    #[serde(default)]
    pub members: Vec<ArgRef>,
    /// Where a team is given the member that takes the input first
    /// (`AgentWorkflow(root_agent=…)`): an edge from `__start__`.
    #[serde(default)]
    pub root: Vec<ArgRef>,
}

/// Event-driven flows: a class on one of `bases` whose methods `start` and `listen`
/// decorators chain (CrewAI Flows), or whose `steps` chain through the event types they
/// take and make (LlamaIndex workflows).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowRule {
    pub framework: String,
    pub bases: Vec<String>,
    #[serde(default)]
    pub start: Vec<String>,
    /// Decorators whose arguments are the steps (or router labels) the method follows.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Calls combining steps in a listen decorator (`or_(a, b)`).
    #[serde(default)]
    pub combinators: Vec<String>,
    /// Decorators of a step that takes an event (its parameter's annotation) and makes
    /// others (the events it constructs): it follows the steps making what it takes.
    #[serde(default)]
    pub steps: Vec<String>,
    /// Events that start the flow (a step taking one follows `__start__`).
    #[serde(default)]
    pub start_events: Vec<String>,
    /// Events that end it (a step making one leads to `__end__`).
    #[serde(default)]
    pub stop_events: Vec<String>,
}

/// The tables of `agents.toml`, as a rule file holds them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentTables {
    #[serde(default)]
    pub agent: Vec<AgentRule>,
    #[serde(default)]
    pub guardrail: Vec<GuardrailRule>,
    #[serde(default)]
    pub tool: Vec<ToolRule>,
    #[serde(default)]
    pub mcp: Vec<McpRule>,
    #[serde(default)]
    pub mcp_transport: Vec<TransportRule>,
    #[serde(default)]
    pub graph: Vec<GraphRule>,
    #[serde(default)]
    pub flow: Vec<FlowRule>,
}

/// Which rule a symbol triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    Agent(usize),
    Guardrail(usize),
    Tool(usize),
    Mcp(usize),
    Transport(usize),
    Graph(usize),
    Flow(usize),
}

/// The rules and their indexes.
#[derive(Debug, Default)]
pub struct AgentRules {
    pub agents: Vec<AgentRule>,
    pub guardrails: Vec<GuardrailRule>,
    pub tools: Vec<ToolRule>,
    pub mcp: Vec<McpRule>,
    pub transports: Vec<TransportRule>,
    pub graphs: Vec<GraphRule>,
    pub flows: Vec<FlowRule>,
    calls: SymbolIndex<Site>,
    decorators: SymbolIndex<Site>,
    bases: SymbolIndex<Site>,
    /// Classes whose methods a rule names: decorator methods, registration methods, run calls.
    classes: SymbolIndex<Site>,
}

impl AgentRules {
    pub(super) fn add(&mut self, tables: AgentTables) {
        for rule in tables.agent {
            let site = Site::Agent(self.agents.len());
            index(&mut self.calls, &rule.symbols, site);
            index(&mut self.decorators, &rule.decorators, site);
            self.agents.push(rule);
        }
        for rule in tables.guardrail {
            let site = Site::Guardrail(self.guardrails.len());
            index(&mut self.calls, &rule.symbols, site);
            index(&mut self.decorators, &rule.decorators, site);
            self.guardrails.push(rule);
        }
        for rule in tables.tool {
            let site = Site::Tool(self.tools.len());
            index(&mut self.calls, &rule.symbols, site);
            index(&mut self.decorators, &rule.decorators, site);
            index(&mut self.bases, &rule.bases, site);
            index(&mut self.classes, &rule.decorator_on, site);
            index(&mut self.classes, &rule.on, site);
            self.tools.push(rule);
        }
        for rule in tables.mcp {
            let site = Site::Mcp(self.mcp.len());
            index(&mut self.calls, &rule.symbols, site);
            index(&mut self.decorators, &rule.decorators, site);
            self.mcp.push(rule);
        }
        for rule in tables.mcp_transport {
            let site = Site::Transport(self.transports.len());
            index(&mut self.calls, &rule.symbols, site);
            index(&mut self.classes, &rule.on, site);
            self.transports.push(rule);
        }
        for rule in tables.graph {
            let site = Site::Graph(self.graphs.len());
            index(&mut self.calls, &rule.symbols, site);
            self.graphs.push(rule);
        }
        for rule in tables.flow {
            index(&mut self.bases, &rule.bases, Site::Flow(self.flows.len()));
            self.flows.push(rule);
        }
    }

    /// Rules a call of `symbol` triggers.
    pub fn calls<'a>(&'a self, symbol: &'a str) -> impl Iterator<Item = Site> + 'a {
        self.calls.get(symbol)
    }

    /// Rules a decorator or attribute resolving to `symbol` triggers.
    pub fn decorators<'a>(&'a self, symbol: &'a str) -> impl Iterator<Item = Site> + 'a {
        self.decorators.get(symbol)
    }

    /// Rules a base class `symbol` triggers.
    pub fn bases<'a>(&'a self, symbol: &'a str) -> impl Iterator<Item = Site> + 'a {
        self.bases.get(symbol)
    }

    /// Rules naming methods of objects made by `class`.
    pub fn classes<'a>(&'a self, class: &'a str) -> impl Iterator<Item = Site> + 'a {
        self.classes.get(class)
    }

    /// The agent rules among `sites`.
    pub fn agents_in(&self, sites: impl Iterator<Item = Site>) -> impl Iterator<Item = &AgentRule> {
        sites.filter_map(|site| match site {
            Site::Agent(i) => Some(&self.agents[i]),
            _ => None,
        })
    }

    /// The guardrail rules among `sites`.
    pub fn guardrails_in(&self, sites: impl Iterator<Item = Site>) -> impl Iterator<Item = &GuardrailRule> {
        sites.filter_map(|site| match site {
            Site::Guardrail(i) => Some(&self.guardrails[i]),
            _ => None,
        })
    }

    /// The tool rules among `sites`.
    pub fn tools_in(&self, sites: impl Iterator<Item = Site>) -> impl Iterator<Item = &ToolRule> {
        sites.filter_map(|site| match site {
            Site::Tool(i) => Some(&self.tools[i]),
            _ => None,
        })
    }

    /// The transport rules among `sites`.
    pub fn transports_in(&self, sites: impl Iterator<Item = Site>) -> impl Iterator<Item = &TransportRule> {
        sites.filter_map(|site| match site {
            Site::Transport(i) => Some(&self.transports[i]),
            _ => None,
        })
    }

    /// The graph rules among `sites`.
    pub fn graphs_in(&self, sites: impl Iterator<Item = Site>) -> impl Iterator<Item = &GraphRule> {
        sites.filter_map(|site| match site {
            Site::Graph(i) => Some(&self.graphs[i]),
            _ => None,
        })
    }

    /// The flow rules among `sites`.
    pub fn flows_in(&self, sites: impl Iterator<Item = Site>) -> impl Iterator<Item = &FlowRule> {
        sites.filter_map(|site| match site {
            Site::Flow(i) => Some(&self.flows[i]),
            _ => None,
        })
    }
}

fn index(index: &mut SymbolIndex<Site>, symbols: &[String], site: Site) {
    for symbol in symbols {
        index.insert(symbol, site);
    }
}
