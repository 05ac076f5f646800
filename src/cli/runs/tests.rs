use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    runs: RunsCommand,
}

fn start(args: &[&str]) -> Result<Request, CliError> {
    let cli = Cli::try_parse_from(std::iter::once("r").chain(args.iter().copied()))
        .map_err(|e| CliError { code: exit::USAGE, message: e.to_string() })?;
    let RunsCommand::Start(s) = cli.runs else { panic!("a start") };
    start_request(s)
}

#[test]
fn a_start_becomes_the_api_body_and_wait() {
    let args = [
        "start",
        "greet",
        "--version",
        "2",
        "--input",
        r#"{"names":["a"]}"#,
        "--idempotency-key",
        "k1",
        "--no-durable",
        "--wait",
        "30s",
    ];
    let r = start(&args).unwrap();
    assert_eq!(
        r.body.unwrap(),
        json!({"workflow": "greet", "version": 2, "input": {"names": ["a"]}, "durable": false,
               "idempotency_key": "k1"})
    );
    assert_eq!((r.query, r.wait), (vec![("wait", "30s".to_string())], Some(Duration::from_secs(30))));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.yaml");
    std::fs::write(&file, "names: [a, b]\n").unwrap();
    let r = start(&["start", "greet", "--input-file", file.to_str().unwrap()]).unwrap();
    assert_eq!(r.body.unwrap(), json!({"workflow": "greet", "input": {"names": ["a", "b"]}}));
    assert!(r.query.is_empty());
}

#[test]
fn bad_starts_are_usage_errors() {
    for args in [
        &["start"][..],
        &["start", "greet", "--input", "{not json"],
        &["start", "greet", "--input", "{}", "--input-file", "x.yaml"],
        &["start", "greet", "--input-file", "/no/such/file"],
        &["start", "greet", "--wait", "soon"],
    ] {
        assert_eq!(start(args).err().map(|e| e.code), Some(exit::USAGE), "{args:?}");
    }
}

#[test]
fn pointers_of_added_steps_are_those_of_the_file() {
    assert_eq!(added_pointer("/steps/5/agent", 3, true), "/2/agent");
    assert_eq!(added_pointer("/steps/3", 3, true), "/0");
    assert_eq!(added_pointer("/steps/4/input/text", 3, false), "/steps/1/input/text");
    assert_eq!(added_pointer("/steps/1/agent", 3, true), "/steps/1/agent", "a step of the run");
    assert_eq!(added_pointer("/output", 3, true), "/output");
}

#[test]
fn only_a_succeeded_run_ends_a_wait_well() {
    let wait = Some(Duration::from_secs(1));
    assert!(finished(&json!({"id": "r", "state": "succeeded"}), wait).is_ok());
    let failed = finished(&json!({"id": "r", "state": "failed", "error": "boom"}), wait).unwrap_err();
    assert_eq!((failed.code, failed.message.as_str()), (exit::FAILURE, "run r failed: boom"));
    let waiting = finished(&json!({"id": "r", "state": "waiting_approval"}), wait).unwrap_err();
    assert!(waiting.message.contains("still waiting_approval after 1s"), "{}", waiting.message);
}

#[test]
fn step_rows_follow_the_dependencies_with_items_and_details() {
    let mut model = RunModel::of_view(&model::tests::view());
    model.set_depends_on(model::depends_on(&model::tests::def()));
    let rows = step_rows(&model, SystemTime::now());
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["fetch", "each", "approve", "report"]);
    assert_eq!(rows[1], ["each", "fetch", "running", "1", "2/3", ""]);
    assert_eq!(rows[2][..3], ["approve".to_string(), "fetch".into(), "waiting_approval".into()]);
}
