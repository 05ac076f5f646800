use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mark1_actors::domain::{ResourceLimits, RuntimeSpec};

use super::error::read_secret_with;
use super::*;

/// A config file in a fresh folder; the folder lives as long as the returned guard.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Loads `text` with an empty environment.
fn load(text: &str) -> Result<(tempfile::TempDir, Config), ConfigError> {
    let (dir, path) = file(text);
    let config = ConfigLoader::new().file(&path).env(no_env()).load()?;
    Ok((dir, config))
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn err(text: &str) -> String {
    load(text).map(|_| ()).unwrap_err().to_string()
}

const AGENT: &str = "[process]\nallowed_dirs = [\"agents\"]\n[agents.echo]\ncommand = \"agents/echo.py\"\n";

#[test]
fn empty_file_gives_defaults() {
    let (dir, config) = load("").unwrap();
    let base = dir.path();
    assert_eq!(config.node.name, "mark1");
    assert_eq!(config.node.data_dir, base.join("data"));
    assert_eq!(config.node.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(config.server.listen, Some("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(config.store_url(), format!("sqlite://{}", base.join("data/mark1.db").display()));
    assert_eq!(config.store.sync, SyncMode::Full);
    assert_eq!(config.store.flush_delay, Duration::from_millis(2));
    assert_eq!(config.store.lazy_delay, Duration::from_millis(50));
    assert_eq!((config.store.batch_max, config.store.queue_limit), (512, 65536));
    assert_eq!((config.limits.max_in_flight, config.limits.default_queue_limit), (100_000, 1024));
    assert_eq!(config.process.allowed_dirs, vec![base.join("examples/agents")]);
    assert_eq!(config.process.env_allow, ["PATH", "LANG", "LC_ALL", "TZ"]);
    assert_eq!(config.work_dir(), base.join("data/work"));
    assert!(config.agents.is_empty());
    assert_eq!(config.base_dir(), base);
    assert_eq!(config.file(), Some(base.join("config.toml").as_path()));
}

#[test]
fn no_file_resolves_against_cwd() {
    let config = ConfigLoader::new().no_file().env(no_env()).load().unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(config.node.data_dir, cwd.join("data"));
    assert_eq!(config.file(), None);
}

#[test]
fn file_values() {
    let (_dir, config) = load(
        "[node]\nname = \"n1\"\nshutdown_timeout = \"1m 30s\"\n[server]\nlisten = \"0.0.0.0:9000\"\n\
         [store]\nsync = \"normal\"\nflush_delay = \"5ms\"\nbatch_max = 10\n[limits]\nmax_in_flight = 7\n",
    )
    .unwrap();
    assert_eq!(config.node.name, "n1");
    assert_eq!(config.node.shutdown_timeout, Duration::from_secs(90));
    assert_eq!(config.server.listen, Some("0.0.0.0:9000".parse().unwrap()));
    assert_eq!(config.store.sync, SyncMode::Normal);
    assert_eq!(config.store.flush_delay, Duration::from_millis(5));
    assert_eq!(config.store.batch_max, 10);
    assert_eq!(config.limits.max_in_flight, 7);
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let (_dir, path) =
        file(&format!("[server]\nlisten = \"127.0.0.1:1\"\n{AGENT}[agents.echo.pool]\nmax = 5\n"));
    let env = [
        ("MARK1_SERVER__LISTEN", "127.0.0.1:2"),
        ("MARK1_AGENTS__ECHO__POOL__MAX", "3"),
        ("MARK1_NODE__NAME", "from-env"),
    ];
    let config = ConfigLoader::new().file(&path).env(env).load().unwrap();
    assert_eq!(config.server.listen, Some("127.0.0.1:2".parse().unwrap()));
    assert_eq!(config.agents["echo"].pool.max, 3);
    assert_eq!(config.agents["echo"].pool.min, 1, "env merges into the file's table");
    assert_eq!(config.node.name, "from-env");

    let addr: SocketAddr = "127.0.0.1:3".parse().unwrap();
    let config = ConfigLoader::new()
        .file(&path)
        .env(env)
        .set("server.listen", addr)
        .set_str("agents.echo.pool.max", "4")
        .load()
        .unwrap();
    assert_eq!(config.server.listen, Some(addr));
    assert_eq!(config.agents["echo"].pool.max, 4);
    assert_eq!(config.node.name, "from-env");
}

#[test]
fn other_mark1_variables_are_ignored() {
    let env = [
        ("MARK1_URL", "http://localhost:8080"),
        ("MARK1_API_KEY", "k"),
        ("MARK1_TEST_POSTGRES_URL", "postgres://x@y/z"),
        ("MARK1_SERVER_LISTEN", "not an address"),
        ("HOME", "/root"),
    ];
    let config = ConfigLoader::new().no_file().env(env).load().unwrap();
    assert_eq!(config.server.listen, ServerConfig::default().listen);
}

#[test]
fn unknown_key_in_file_names_key_and_file() {
    let (_dir, path) = file("[server]\nlisen = \"127.0.0.1:1\"\n");
    let e = ConfigLoader::new().file(&path).env(no_env()).load().unwrap_err().to_string();
    assert!(e.starts_with(&format!("unknown key 'server.lisen' in {}", path.display())), "{e}");
    assert!(e.contains("listen"), "suggests the known keys: {e}");

    let e = err("[models]\nx = 1\n");
    assert!(e.starts_with("unknown key 'models.x' in "), "{e}");
    let e = err(&format!("{AGENT}[agents.echo.pool]\nmaxx = 2\n"));
    assert!(e.starts_with("unknown key 'agents.echo.pool.maxx' in "), "{e}");
}

#[test]
fn unknown_env_section_or_key_names_the_variable() {
    let load_env =
        |var: &str| ConfigLoader::new().no_file().env([(var, "1")]).load().unwrap_err().to_string();
    let e = load_env("MARK1_FOO__BAR");
    assert!(e.starts_with("environment variable MARK1_FOO__BAR: unknown config section 'foo'"), "{e}");
    let e = load_env("MARK1_SERVER__LISEN");
    assert_eq!(
        e,
        "unknown key 'server.lisen' in environment variable MARK1_SERVER__LISEN (expected one of: \
         listen, max_body_bytes, call_timeout, max_wait, ws_buffer, tls)"
    );
}

#[test]
fn bad_values_name_the_key() {
    let e = err("[server]\nlisten = \"abc\"\n");
    assert!(e.starts_with("server.listen: invalid socket address \"abc\""), "{e}");
    assert!(e.contains("config.toml"), "names the file: {e}");

    let e = ConfigLoader::new().no_file().env([("MARK1_SERVER__LISTEN", "abc")]).load().unwrap_err();
    assert!(e.to_string().contains("(from environment variable MARK1_SERVER__LISTEN)"), "{e}");

    let e = err("[store]\nsync = \"fast\"\n");
    assert!(e.starts_with("store.sync: unknown value \"fast\", expected one of: full, normal"), "{e}");
    let e = err("[node]\nshutdown_timeout = \"soon\"\n");
    assert!(e.starts_with("node.shutdown_timeout: "), "{e}");
    let e = err("[node]\nname = \"Bad Name\"\n");
    assert!(e.starts_with("node.name: 'Bad Name' must match"), "{e}");
    let e = err("[store]\nbatch_max = 0\n");
    assert!(e.starts_with("store.batch_max: must be at least 1"), "{e}");
    let e = err("[server]\nlisten = \"127.0.0.1:8080\"\nlisten = \"x\"\n");
    assert!(e.contains("config.toml") && e.contains("duplicate"), "a TOML syntax error names the file: {e}");
}

#[test]
fn password_in_store_url_is_refused_without_echoing_it() {
    let e = err("[store]\nurl = \"postgres://mark1:hunter2@db/mark1\"\n");
    assert!(e.starts_with("store.url: the URL contains a password"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let (_d, config) =
        load("[store]\nurl = \"postgres://mark1@db/mark1\"\npassword_env = \"DB_PW\"\n").unwrap();
    assert_eq!(config.store_url(), "postgres://mark1@db/mark1");
}

#[test]
fn missing_explicit_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let e = ConfigLoader::new().file(&path).env(no_env()).load().unwrap_err();
    assert!(matches!(&e, ConfigError::FileNotFound { path: p } if *p == path), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()));
}

#[test]
fn relative_paths_resolve_against_the_files_folder() {
    let (dir, config) = load(
        "[node]\ndata_dir = \"var/../state\"\n[store]\nurl = \"sqlite://db/x.db?mode=rwc\"\n\
         password_file = \"secrets/pw\"\n[process]\nwork_dir = \"/abs/work\"\n\
         allowed_dirs = [\"agents\", \"/opt/agents\"]\n[agents.echo]\ncommand = \"agents/echo.py\"\n\
         working_dir = \"wd\"\n",
    )
    .unwrap();
    let base = dir.path();
    assert_eq!(config.node.data_dir, base.join("state"));
    assert_eq!(config.store_url(), format!("sqlite://{}?mode=rwc", base.join("db/x.db").display()));
    assert_eq!(config.store.password_file.as_deref(), Some(base.join("secrets/pw").as_path()));
    assert_eq!(config.work_dir(), Path::new("/abs/work"));
    assert_eq!(config.process.allowed_dirs, vec![base.join("agents"), PathBuf::from("/opt/agents")]);
    let spec = &config.agent_specs().unwrap()[0];
    let RuntimeSpec::Process(p) = &spec.runtime else { panic!("process agent expected") };
    assert_eq!(p.command, base.join("agents/echo.py"));
    assert_eq!(p.working_dir.as_deref(), Some(base.join("wd").as_path()));
}

#[test]
fn agent_table_becomes_a_spec_with_defaults() {
    let (dir, config) =
        load(&format!("{AGENT}capabilities = [\"text.echo\"]\nenv_allow = [\"HOME\", \"PATH\"]\n")).unwrap();
    let specs = config.agent_specs().unwrap();
    assert_eq!(specs.len(), 1);
    let spec = &specs[0];
    assert_eq!(spec.key(), "default/echo");
    assert_eq!(spec.capabilities, ["text.echo"]);
    assert_eq!((spec.pool.min, spec.pool.max), (1, 4));
    assert_eq!(spec.queue_limit, 1024);
    assert_eq!(spec.timeout, Duration::from_secs(60));
    assert_eq!(spec.retries, Default::default());
    let RuntimeSpec::Process(p) = &spec.runtime else { panic!("process agent expected") };
    assert_eq!(p.command, dir.path().join("agents/echo.py"));
    assert_eq!(p.env_allow, ["PATH", "LANG", "LC_ALL", "TZ", "HOME"], "node list plus the agent's");
    assert_eq!(p.limits, ResourceLimits::default());
    assert_eq!(p.cancel_grace, Duration::from_secs(2));

    let (_d, config) = load(&format!(
        "{AGENT}namespace = \"ops\"\nqueue_limit = 9\ntimeout = \"5s\"\ncost = 1.5\n\
         retries = {{ attempts = 2 }}\nlimits = {{ memory_mb = 0, processes = 8 }}\n"
    ))
    .unwrap();
    let spec = &config.agent_specs().unwrap()[0];
    assert_eq!(spec.key(), "ops/echo");
    assert_eq!((spec.queue_limit, spec.timeout, spec.cost), (9, Duration::from_secs(5), 1.5));
    assert_eq!(spec.retries.attempts, 2);
    let RuntimeSpec::Process(p) = &spec.runtime else { panic!("process agent expected") };
    assert_eq!((p.limits.memory_mb, p.limits.processes, p.limits.open_files), (None, Some(8), Some(256)));
}

#[test]
fn bad_agents_are_errors_naming_the_agent() {
    let e = err("[process]\nallowed_dirs = [\"a\"]\n[agents.Echo]\ncommand = \"a/x\"\n");
    assert!(e.starts_with("agents.Echo: agent name 'Echo' must match"), "{e}");
    let e = err(&format!("{AGENT}pool = {{ min = 3, max = 2 }}\n"));
    assert!(e.starts_with("agents.echo: ") && e.contains("pool"), "{e}");
    let e = err("[agents.echo]\ndescription = \"no command\"\n");
    assert!(e.starts_with("agents.echo: command: required"), "{e}");
    let e = err("[process]\nallowed_dirs = [\"agents\"]\n[agents.echo]\ncommand = \"agents/../bin/sh\"\n");
    assert!(e.starts_with("agents.echo: command: ") && e.contains("outside process.allowed_dirs"), "{e}");
    let e = err(&format!("{AGENT}env = {{ \"A=B\" = \"x\" }}\n"));
    assert!(e.starts_with("agents.echo: env: \"A=B\" is not a valid"), "{e}");
    let e = ConfigLoader::new().no_file().env([("MARK1_AGENTS__ECHO__POOL__MAX", "2")]).load().unwrap_err();
    assert!(e.to_string().starts_with("agents.echo: command: required"), "{e}");
}

#[test]
fn native_runtime_in_config_is_refused() {
    let e = err("[agents.helper]\nruntime = \"native\"\n");
    assert!(e.starts_with("agents.helper: runtime \"native\" cannot be configured"), "{e}");
    assert!(e.contains("registered in code"), "{e}");
    let e = err("[agents.helper]\nruntime = \"http\"\n");
    assert!(e.starts_with("agents.helper: runtime: unknown runtime \"http\""), "{e}");
}

#[test]
fn repo_config_toml_loads_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let config = ConfigLoader::new().file(&path).env(no_env()).load().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(config.node.data_dir, root.join("data"));
    let specs = config.agent_specs().unwrap();
    let names: Vec<_> = specs.iter().map(|s| (s.name.as_str(), s.capabilities[0].as_str())).collect();
    assert_eq!(names, [("echo", "text.echo"), ("wordcount", "text.stats")]);
    for spec in &specs {
        assert_eq!((spec.pool.min, spec.pool.max), (1, 2));
        let RuntimeSpec::Process(p) = &spec.runtime else { panic!("process agent expected") };
        assert!(p.command.starts_with(root.join("examples/agents")));
    }
    // The documented values are the defaults: the file and no file agree outside [agents].
    let defaults = ConfigLoader::new().no_file().env(no_env()).load().unwrap();
    assert_eq!(config.node, defaults.node);
    assert_eq!(
        (&config.server, &config.store, &config.limits),
        (&defaults.server, &defaults.store, &defaults.limits)
    );
    assert_eq!(config.process, defaults.process);
    assert_eq!(config.mcp, defaults.mcp, "the MCP servers are commented examples");
    // Outside [models.providers] too: the file adds the local Ollama and nothing else.
    let mut models = config.models.clone();
    let ollama = models.providers.remove("ollama").expect("the default config names a local Ollama");
    assert_eq!(
        (ollama.kind, ollama.base_url.as_str()),
        (crate::config::ProviderKind::Ollama, "http://127.0.0.1:11434")
    );
    assert_eq!(models, defaults.models);
}

#[test]
fn secrets_from_env_and_file() {
    let lookup = |name: &str| (name == "DB_PW").then(|| "hunter2".into());
    assert_eq!(read_secret_with(lookup, Some("DB_PW"), None).unwrap().as_deref(), Some("hunter2"));
    let e = read_secret_with(lookup, Some("OTHER"), None).unwrap_err();
    assert!(e.to_string().contains("OTHER is not set"), "{e}");
    assert_eq!(read_secret_with(lookup, None, None).unwrap(), None);

    let (_dir, path) = file("s3cret\n");
    assert_eq!(read_secret_with(lookup, None, Some(&path)).unwrap().as_deref(), Some("s3cret"));
    assert!(matches!(read_secret_with(lookup, Some("DB_PW"), Some(&path)), Err(ConfigError::SecretConflict)));
    let e = read_secret_with(lookup, None, Some(Path::new("/nonexistent/pw"))).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/pw"), "{e}");
    let (_dir, empty) = file("\n");
    assert!(matches!(read_secret_with(lookup, None, Some(&empty)), Err(ConfigError::SecretFileEmpty { .. })));
    // The public helper reads the real environment; PATH is set wherever tests run.
    assert!(read_secret(Some("PATH"), None).unwrap().is_some());
}

#[test]
fn debug_does_not_leak_secrets() {
    let (_d, pw) = file("hunter2\n");
    let (_dir, config) = load(&format!("[store]\npassword_file = \"{}\"\n", pw.display())).unwrap();
    assert_eq!(config.store.password().unwrap().as_deref(), Some("hunter2"));
    let debug = format!("{config:?}");
    assert!(debug.contains("password_file") && !debug.contains("hunter2"), "{debug}");

    let (_dir, config) = load("[store]\npassword_env = \"MARK1_TEST_DB_PW\"\n").unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("MARK1_TEST_DB_PW"), "{debug}");
    assert!(
        format!("{:?}", config.store.password()).contains("MARK1_TEST_DB_PW"),
        "errors name the variable"
    );
}

#[test]
fn env_values_keep_their_text_unless_bracketed() {
    let env = [
        ("MARK1_NODE__DATA_DIR", "2024"),
        ("MARK1_PROCESS__ENV_ALLOW", "[PATH, HOME]"),
        ("MARK1_STORE__BATCH_MAX", "64"),
    ];
    let config = ConfigLoader::new().no_file().env(env).load().unwrap();
    assert!(config.node.data_dir.ends_with("2024"), "a number-like value stays text for a path key");
    assert_eq!(config.process.env_allow, ["PATH", "HOME"]);
    assert_eq!(config.store.batch_max, 64);
    let e = ConfigLoader::new().no_file().env([("MARK1_STORE__BATCH_MAX", "many")]).load().unwrap_err();
    assert!(e.to_string().starts_with("store.batch_max: "), "{e}");
}

#[test]
fn jwt_settings_are_checked_and_name_the_key() {
    let e = err("[auth.jwt]\nhs256_secret_env = \"S\"\naudience = \"mark1\"\n");
    assert!(e.starts_with("auth.jwt.issuer: required"), "{e}");
    let e = err("[auth.jwt]\nhs256_secret_env = \"S\"\nissuer = \"i\"\n");
    assert!(e.starts_with("auth.jwt.audience: required"), "{e}");
    let e = err("[auth.jwt]\nleeway = \"1h\"\n");
    assert!(e.starts_with("auth.jwt.leeway: at most 5m"), "{e}");
    let e = err(
        "[auth.jwt]\nhs256_secret_env = \"S\"\nhs256_secret_file = \"s\"\nissuer = \"i\"\naudience = \"a\"\n",
    );
    assert!(e.contains("not both"), "{e}");
    let e = err("[auth.jwt]\npublic_keys = [{ algorithm = \"HS512\", file = \"k.pem\" }]\n");
    assert!(e.contains("HS512"), "an unknown algorithm is named: {e}");
    let (dir, config) =
        load("[auth.jwt]\npublic_keys = [{ algorithm = \"EdDSA\", file = \"k.pem\" }]\nissuer = \"i\"\naudience = \"a\"\n")
            .unwrap();
    assert_eq!(
        config.auth.jwt.public_keys[0].file,
        dir.path().join("k.pem"),
        "key files resolve against the config's folder"
    );
    let e = err("[limits]\nrate_per_sec = 10\nrate_burst = 0\n");
    assert!(e.starts_with("limits.rate_burst"), "{e}");
}

#[test]
fn a_provider_can_be_added_from_the_environment_alone() {
    let env = [
        ("MARK1_MODELS__PROVIDERS__LOCAL__KIND", "openai"),
        ("MARK1_MODELS__PROVIDERS__LOCAL__BASE_URL", "http://127.0.0.1:8000/v1"),
    ];
    let config = ConfigLoader::new().no_file().env(env).load().unwrap();
    let local = &config.models.providers["local"];
    assert_eq!(local.kind, crate::config::ProviderKind::Openai);
    assert_eq!(local.base_url, "http://127.0.0.1:8000/v1");
    assert_eq!(local.settings("local").max_in_flight, 256, "defaults fill the rest");
}

#[test]
fn bad_model_settings_name_the_key() {
    let e = err("[models.providers.x]\nkind = \"ollama\"\nbase_url = \"localhost:11434\"\n");
    assert!(e.contains("models.providers.x.base_url") && e.contains("http://"), "{e}");
    let e = err("[models.providers.x]\nkind = \"gpt\"\nbase_url = \"http://h\"\n");
    assert!(e.contains("models.providers.x.kind") || e.contains("unknown variant"), "{e}");
    let e = err("[models.providers.x]\nkind = \"openai\"\nbase_url = \"http://h\"\n[models.namespaces.team]\nproviders = [\"y\"]\n");
    assert!(e.contains("models.namespaces.team.providers") && e.contains("'y'"), "{e}");
    let e = err("[models]\npolicy = \"fastest\"\n");
    assert!(e.contains("fastest"), "{e}");
}

#[test]
fn llm_agent_tables_become_llm_specs() {
    let (_d, config) = load(
        "[agents.writer]\nruntime = \"llm\"\ncapabilities = [\"text.write\"]\n\
         [agents.writer.llm]\nmodel = \"llama3.1\"\nsystem = \"You write.\"\nmax_steps = 4\n\
         max_tokens = 5000\n\
         [[agents.writer.llm.tools]]\nkind = \"agent\"\nagent = \"search\"\n\
         [[agents.writer.llm.tools]]\nkind = \"http\"\nname = \"weather\"\n\
         url = \"https://api.example.com/w/{{ city }}\"\nallow_hosts = [\"api.example.com\"]\n",
    )
    .unwrap();
    let spec = &config.agent_specs().unwrap()[0];
    let RuntimeSpec::Llm(llm) = &spec.runtime else { panic!("llm agent expected") };
    assert_eq!((llm.model.as_str(), llm.max_steps, llm.max_tokens), ("llama3.1", 4, Some(5000)));
    assert_eq!(llm.tools.len(), 2);
    assert_eq!(spec.capabilities, ["text.write"]);

    let error = |text: &str| load(text).and_then(|(_d, c)| c.agent_specs()).unwrap_err().to_string();
    let missing = error("[agents.w]\nruntime = \"llm\"\n");
    assert!(missing.contains("agents.w") && missing.contains("llm: required"), "{missing}");
    let command = error("[agents.w]\nruntime = \"llm\"\ncommand = \"x\"\n[agents.w.llm]\nmodel = \"m\"\n");
    assert!(command.contains("command: only for runtime = \"process\""), "{command}");
    let steps = error("[agents.w]\nruntime = \"llm\"\n[agents.w.llm]\nmodel = \"m\"\nmax_steps = 0\n");
    assert!(steps.contains("agents.w") && steps.contains("llm.max_steps"), "{steps}");
    let typo = error("[agents.w]\nruntime = \"llm\"\n[agents.w.llm]\nmodel = \"m\"\nmax_step = 3\n");
    assert!(typo.contains("max_step"), "{typo}");
    let stray = error(&format!("{AGENT}[agents.echo.llm]\nmodel = \"m\"\n"));
    assert!(stray.contains("llm: only for runtime = \"llm\""), "{stray}");
}

#[test]
fn mcp_servers_are_stdio_or_http_and_paths_resolve() {
    let (dir, config) = load(
        "[mcp.servers.files]\ncommand = \"servers/files.py\"\nargs = [\"--root\", \".\"]\nworking_dir = \"work\"\n\
         [mcp.servers.npx]\ncommand = \"npx\"\n\
         [mcp.servers.search]\nurl = \"https://mcp.example.com/mcp\"\napi_key_env = \"SEARCH_TOKEN\"\n\
         headers = { \"X-Team\" = \"a\" }\ntimeout = \"5s\"\n",
    )
    .unwrap();
    let servers = &config.mcp.servers;
    assert_eq!(servers["files"].command.as_deref(), Some(dir.path().join("servers/files.py").as_path()));
    assert_eq!(servers["files"].working_dir.as_deref(), Some(dir.path().join("work").as_path()));
    assert_eq!(servers["npx"].command.as_deref(), Some(Path::new("npx")), "a bare name is for PATH");
    assert_eq!(servers["npx"].timeout, Duration::from_secs(30));
    assert_eq!(servers["npx"].env_allow, ["PATH", "HOME", "LANG", "LC_ALL", "TZ"]);
    assert!(
        matches!(servers["search"].transport(), Some(McpTransport::Http { url }) if url == "https://mcp.example.com/mcp")
    );
    assert_eq!(servers["search"].timeout, Duration::from_secs(5));

    let env = [("MARK1_MCP__SERVERS__LOCAL__URL", "http://127.0.0.1:9000/mcp")];
    let config = ConfigLoader::new().no_file().env(env).load().unwrap();
    assert!(matches!(config.mcp.servers["local"].transport(), Some(McpTransport::Http { .. })));
}

#[test]
fn bad_mcp_servers_name_the_key() {
    let e = err("[mcp.servers.files]\ncommand = \"files\"\nurl = \"http://h/mcp\"\n");
    assert!(
        e.starts_with("mcp.servers.files: set command (a stdio server) or url (an HTTP server), not both"),
        "{e}"
    );
    let e = err("[mcp.servers.files]\ntimeout = \"5s\"\n");
    assert!(e.starts_with("mcp.servers.files: set command (a stdio server) or url"), "{e}");
    let e = err("[mcp.servers.files]\nurl = \"h:80/mcp\"\n");
    assert!(e.starts_with("mcp.servers.files.url: 'h:80/mcp' must start with http://"), "{e}");
    let e = err("[mcp.servers.files]\ncommand = \"files\"\napi_key_env = \"T\"\n");
    assert!(e.starts_with("mcp.servers.files.api_key_env: only for an HTTP server"), "{e}");
    let e = err("[mcp.servers.files]\nurl = \"http://h/mcp\"\nargs = [\"x\"]\n");
    assert!(e.starts_with("mcp.servers.files.args: only for a stdio server"), "{e}");
    let e = err("[mcp.servers.files]\nurl = \"http://h/mcp\"\nheaders = { Authorization = \"Bearer x\" }\n");
    assert!(e.starts_with("mcp.servers.files.headers.Authorization: a token does not belong"), "{e}");
    assert!(!e.contains("Bearer x"), "the secret is not repeated: {e}");
    let e = err("[mcp.servers.files]\ncommand = \"files\"\ntimeout = \"0s\"\n");
    assert!(e.starts_with("mcp.servers.files.timeout: must be greater than zero"), "{e}");
    let e = err("[mcp.servers.Files]\ncommand = \"files\"\n");
    assert!(e.starts_with("mcp.servers.Files: a server name must match"), "{e}");
    let e = err("[mcp.servers.files]\ncommand = \"files\"\ncwd = \"x\"\n");
    assert!(e.starts_with("unknown key 'mcp.servers.files.cwd' in "), "{e}");
}
