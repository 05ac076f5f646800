use super::*;

const OLLAMA: &str = "http://localhost:11434/v1";

fn options(target: Target, model: Option<&str>) -> Options {
    Options { model: model.map(str::to_owned), ..Options::new(target) }
}

fn plan(language: Language, src: &str, options: &Options) -> PlannedSource {
    let rel = match language {
        Language::Python => "app.py",
        Language::Typescript => "app.ts",
        _ => "app.js",
    };
    plan_source(rel, language, src, options, Rules::built_in())
}

/// The rewritten text, checked to parse as well as the source and to be a fixed point.
fn rewritten(language: Language, src: &str, options: &Options) -> String {
    let out = plan(language, src, options);
    assert!(parses_as_well(language, src, &out.text), "the rewrite parses:\n{}", out.text);
    let again = plan(language, &out.text, options);
    assert_eq!(again.text, out.text, "a second run changes nothing");
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    out.text
}

fn ollama(language: Language, src: &str) -> String {
    rewritten(language, src, &options(Target::Ollama, None))
}

#[test]
fn python_client_gets_base_url_and_api_key_others_kept() {
    let src = "from openai import OpenAI\n\nclient = OpenAI(api_key=\"sk-test\", timeout=30)\n";
    let out = plan(Language::Python, src, &options(Target::Ollama, None));
    assert_eq!(
        out.text,
        format!("from openai import OpenAI\n\nclient = OpenAI(api_key=\"ollama\", timeout=30, base_url=\"{OLLAMA}\")\n")
    );
    let kinds: Vec<_> = out.changes.iter().map(|c| (c.line, c.kind, c.before.as_deref())).collect();
    assert_eq!(kinds, [(3, ChangeKind::ApiKey, Some("\"sk-test\"")), (3, ChangeKind::BaseUrl, None)]);
    assert_eq!(ollama(Language::Python, src), out.text);
}

#[test]
fn python_existing_base_url_is_replaced_in_place() {
    let src = "import os\nfrom openai import OpenAI\nc = OpenAI(base_url='https://api.openai.com/v1', api_key=os.environ[\"OPENAI_API_KEY\"])\n";
    assert_eq!(
        ollama(Language::Python, src),
        format!(
            "import os\nfrom openai import OpenAI\nc = OpenAI(base_url='{OLLAMA}', api_key=\"ollama\")\n"
        )
    );
}

#[test]
fn multi_line_call_keeps_its_layout_and_trailing_comma() {
    let src =
        "import openai\n\nclient = openai.AsyncOpenAI(\n    organization=\"org\",\n    timeout=30,\n)\n";
    assert_eq!(
        ollama(Language::Python, src),
        format!(
            "import openai\n\nclient = openai.AsyncOpenAI(\n    organization=\"org\",\n    timeout=30,\n    base_url=\"{OLLAMA}\",\n    api_key=\"ollama\",\n)\n"
        )
    );
    // Without a trailing comma, none is added at the end, and a comment stays on its line.
    let src = "from openai import OpenAI\nc = OpenAI(\n    timeout=30  # seconds\n)\n";
    assert_eq!(
        ollama(Language::Python, src),
        format!("from openai import OpenAI\nc = OpenAI(\n    timeout=30,  # seconds\n    base_url=\"{OLLAMA}\",\n    api_key=\"ollama\"\n)\n")
    );
}

#[test]
fn aliases_count_and_other_classes_named_openai_do_not() {
    let src = "from openai import OpenAI as Client\nimport openai as oa\na = Client()\nb = oa.OpenAI()\n";
    assert_eq!(
        ollama(Language::Python, src),
        format!(
            "from openai import OpenAI as Client\nimport openai as oa\na = Client(base_url=\"{OLLAMA}\", api_key=\"ollama\")\nb = oa.OpenAI(base_url=\"{OLLAMA}\", api_key=\"ollama\")\n"
        )
    );
    let src = "from mylib import OpenAI\nc = OpenAI()\n";
    assert_eq!(ollama(Language::Python, src), src);
}

#[test]
fn a_client_already_at_the_target_is_left_alone() {
    let src = format!("from openai import OpenAI\nc = OpenAI(base_url=\"{OLLAMA}\")\n");
    let out = plan(Language::Python, &src, &options(Target::Ollama, None));
    assert_eq!(out.text, src);
    assert!(out.changes.is_empty());
}

#[test]
fn keyword_splat_is_skipped_not_doubled() {
    let src = "from openai import OpenAI\nc = OpenAI(**config)\n";
    let out = plan(Language::Python, src, &options(Target::Ollama, None));
    assert_eq!(out.text, src);
    assert!(out.skipped[0].1.contains("**"), "{:?}", out.skipped);
}

#[test]
fn javascript_options_object_with_and_without_base_url() {
    let src = "import OpenAI from \"openai\";\nconst client = new OpenAI({ apiKey: process.env.OPENAI_API_KEY });\n";
    assert_eq!(
        ollama(Language::Javascript, src),
        format!("import OpenAI from \"openai\";\nconst client = new OpenAI({{ apiKey: \"ollama\", baseURL: \"{OLLAMA}\" }});\n")
    );
    let src = "const OpenAI = require(\"openai\");\nconst c = new OpenAI({\n  baseURL: 'https://api.openai.com/v1',\n  apiKey,\n});\n";
    assert_eq!(
        ollama(Language::Javascript, src),
        format!("const OpenAI = require(\"openai\");\nconst c = new OpenAI({{\n  baseURL: '{OLLAMA}',\n  apiKey: \"ollama\",\n}});\n")
    );
    let src = "import OpenAI from \"openai\";\nconst c = new OpenAI();\n";
    assert_eq!(
        ollama(Language::Javascript, src),
        format!("import OpenAI from \"openai\";\nconst c = new OpenAI({{ baseURL: \"{OLLAMA}\", apiKey: \"ollama\" }});\n")
    );
}

#[test]
fn typescript_client_and_model_with_model_flag() {
    let src = "import { OpenAI } from \"openai\";\n\nconst client: OpenAI = new OpenAI({ timeout: 5 });\n\nexport async function ask(q: string): Promise<string> {\n  const r = await client.chat.completions.create({ model: \"gpt-4o\", messages: [{ role: \"user\", content: q }] });\n  return r.choices[0].message.content ?? \"\";\n}\n";
    let out = rewritten(Language::Typescript, src, &options(Target::Ollama, Some("llama3.2")));
    assert!(
        out.contains(&format!("new OpenAI({{ timeout: 5, baseURL: \"{OLLAMA}\", apiKey: \"ollama\" }})")),
        "{out}"
    );
    assert!(out.contains("create({ model: \"llama3.2\", messages"), "{out}");
}

#[test]
fn langchain_python_clients_and_models() {
    let src = "from langchain_openai import ChatOpenAI, OpenAIEmbeddings\n\nllm = ChatOpenAI(model=\"gpt-4o\", temperature=0)\nemb = OpenAIEmbeddings(openai_api_key=KEY)\n";
    let out = plan(Language::Python, src, &options(Target::Ollama, Some("llama3.2")));
    assert_eq!(
        out.text,
        format!("from langchain_openai import ChatOpenAI, OpenAIEmbeddings\n\nllm = ChatOpenAI(model=\"llama3.2\", temperature=0, base_url=\"{OLLAMA}\", api_key=\"ollama\")\nemb = OpenAIEmbeddings(openai_api_key=\"ollama\", base_url=\"{OLLAMA}\")\n")
    );
    assert!(out.changes.iter().any(|c| c.kind == ChangeKind::Model && c.after == "\"llama3.2\""));
    // No --model: a model name the target does not have is reported, not changed.
    let out = plan(Language::Python, src, &options(Target::Ollama, None));
    assert!(out.text.contains("model=\"gpt-4o\""));
    assert!(
        out.skipped.iter().any(|(line, r)| *line == 3 && r.contains("\"gpt-4o\" left unchanged")),
        "{:?}",
        out.skipped
    );
}

#[test]
fn langchain_javascript_takes_the_base_url_in_configuration() {
    let src = "import { ChatOpenAI } from \"@langchain/openai\";\nconst llm = new ChatOpenAI({ model: \"gpt-4o\" });\n";
    assert_eq!(
        ollama(Language::Javascript, src),
        format!("import {{ ChatOpenAI }} from \"@langchain/openai\";\nconst llm = new ChatOpenAI({{ model: \"gpt-4o\", configuration: {{ baseURL: \"{OLLAMA}\" }}, apiKey: \"ollama\" }});\n")
    );
    let src = "import { ChatOpenAI } from \"@langchain/openai\";\nconst llm = new ChatOpenAI({ configuration: { organization: \"o\" } });\n";
    assert_eq!(
        ollama(Language::Javascript, src),
        format!("import {{ ChatOpenAI }} from \"@langchain/openai\";\nconst llm = new ChatOpenAI({{ configuration: {{ organization: \"o\", baseURL: \"{OLLAMA}\" }}, apiKey: \"ollama\" }});\n")
    );
}

#[test]
fn model_flag_replaces_literals_and_same_file_constants() {
    let src = "import os\nfrom openai import OpenAI\n\nMODEL = \"gpt-4o\"\nclient = OpenAI()\n\n\ndef ask(q):\n    client.chat.completions.create(model=MODEL, messages=[])\n    client.embeddings.create(model='text-embedding-3-small', input=q)\n    client.chat.completions.create(model=os.environ[\"CHAT_MODEL\"], messages=[])\n";
    let options = options(Target::Ollama, Some("llama3.2"));
    let out = plan(Language::Python, src, &options);
    assert!(out.text.contains("MODEL = \"llama3.2\"\n"), "{}", out.text);
    assert!(out.text.contains("model=MODEL,"), "the site keeps naming the constant");
    assert!(out.text.contains("model='llama3.2'"), "quotes kept: {}", out.text);
    assert!(out.text.contains("model=os.environ[\"CHAT_MODEL\"]"));
    assert!(
        out.skipped.iter().any(|(line, r)| *line == 11 && r.contains("environment variable CHAT_MODEL")),
        "{:?}",
        out.skipped
    );
    let models: Vec<_> = out.changes.iter().filter(|c| c.kind == ChangeKind::Model).map(|c| c.line).collect();
    assert_eq!(models, [4, 10]);
    assert_eq!(rewritten(Language::Python, src, &options), out.text);
}

#[test]
fn legacy_module_calls_are_reported_not_rewritten() {
    let src = "import openai\nopenai.ChatCompletion.create(model=\"gpt-4\", messages=[])\n";
    let out = plan(Language::Python, src, &options(Target::Ollama, Some("llama3.2")));
    assert_eq!(out.text, src);
    assert!(
        out.skipped.iter().any(|(line, r)| *line == 2 && r.contains("openai.ChatCompletion.create")),
        "{:?}",
        out.skipped
    );
}

#[test]
fn mark1_target_reads_its_key_from_the_environment() {
    let src =
        "\"\"\"Doc.\"\"\"\nfrom __future__ import annotations\n\nfrom openai import OpenAI\nc = OpenAI()\n";
    let out = rewritten(Language::Python, src, &options(Target::Mark1, None));
    assert_eq!(
        out,
        "\"\"\"Doc.\"\"\"\nfrom __future__ import annotations\nimport os\n\nfrom openai import OpenAI\nc = OpenAI(base_url=\"http://127.0.0.1:8080/openai/v1\", api_key=os.environ.get(\"MARK1_API_KEY\"))\n"
    );
    // `os` already imported: not imported twice.
    let src = "import os\nfrom openai import OpenAI\nc = OpenAI()\n";
    let out = rewritten(Language::Python, src, &options(Target::Mark1, None));
    assert_eq!(out.matches("import os").count(), 1);
    let src = "import OpenAI from \"openai\";\nconst c = new OpenAI({});\n";
    assert_eq!(
        rewritten(Language::Javascript, src, &options(Target::Mark1, None)),
        "import OpenAI from \"openai\";\nconst c = new OpenAI({ baseURL: \"http://127.0.0.1:8080/openai/v1\", apiKey: process.env.MARK1_API_KEY });\n"
    );
}

#[test]
fn base_url_override_is_used() {
    let options = Options { base_url: "http://gpu-box:11434/v1".into(), ..Options::new(Target::Ollama) };
    let src = "from openai import OpenAI\nc = OpenAI()\n";
    assert!(rewritten(Language::Python, src, &options).contains("base_url=\"http://gpu-box:11434/v1\""));
}

#[test]
fn a_rewrite_that_would_not_parse_is_refused_and_nothing_written() {
    let before = "from openai import OpenAI\nc = OpenAI()\n";
    let broken = "from openai import OpenAI\nc = OpenAI(base_url=\n";
    assert!(parses_as_well(Language::Python, before, before));
    assert!(!parses_as_well(Language::Python, before, broken));
    // A file that already had errors may keep them, not gain more.
    assert!(parses_as_well(Language::Python, broken, broken));

    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, after: &str| FileRewrite {
        path: name.into(),
        file: dir.path().join(name),
        language: Language::Python,
        before: before.into(),
        after: after.into(),
        changes: Vec::new(),
    };
    let good = "from openai import OpenAI\nc = OpenAI(timeout=1)\n";
    for f in ["good.py", "bad.py"] {
        std::fs::write(dir.path().join(f), before).unwrap();
    }
    let plan = Plan { files: vec![file("good.py", good), file("bad.py", broken)], skipped: Vec::new() };
    let err = plan.write().unwrap_err();
    assert!(matches!(&err, RewriteError::WouldNotParse { files } if files == &["bad.py"]), "{err}");
    assert!(err.to_string().contains("bad.py"));
    for f in ["good.py", "bad.py"] {
        assert_eq!(std::fs::read_to_string(dir.path().join(f)).unwrap(), before, "{f} untouched");
    }
    let plan = Plan { files: vec![file("good.py", good)], skipped: Vec::new() };
    plan.write().unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("good.py")).unwrap(), good);
}

#[test]
fn diff_is_headed_like_git() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/app.py"), "from openai import OpenAI\nc = OpenAI()\n").unwrap();
    let plan = rewrite(dir.path(), &options(Target::Ollama, None), Rules::built_in()).unwrap();
    assert_eq!(plan.files.len(), 1);
    let diff = plan.files[0].diff();
    assert!(diff.starts_with("--- a/src/app.py\n+++ b/src/app.py\n@@"), "{diff}");
    assert!(diff.contains(&format!("+c = OpenAI(base_url=\"{OLLAMA}\", api_key=\"ollama\")")), "{diff}");
}
