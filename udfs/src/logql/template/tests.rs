//! Template tests, mostly Loki's `fmt_test.go` cases.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn render_at(t: &str, l: &[(&str, &str)], line: &str, ts: i64) -> Result<String, String> {
    let lb = labels(l);
    Template::compile(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .render(&TemplateData {
            labels: &lb,
            line,
            timestamp_ns: ts,
        })
}

fn r(t: &str, l: &[(&str, &str)]) -> String {
    render_at(t, l, "", 0).unwrap()
}

const FB: &[(&str, &str)] = &[("foo", "blip"), ("bar", "blop")];

#[test]
fn loki_basic_cases() {
    assert_eq!(
        r(r#"{{.foo | count "abc" }}"#, &[("foo", "abc abc abc")]),
        "3"
    );
    assert_eq!(
        r(r#"{{.foo | count "a|b|c" }}"#, &[("foo", "abc abc abc")]),
        "9"
    );
    assert_eq!(r("foo{{.foo}}buzz{{  .bar  }}", FB), "fooblipbuzzblop");
    assert_eq!(
        r(r#"foo{{.foo}}buzz{{ Replace .bar "blop" "bar" -1 }}"#, FB),
        "fooblipbuzzbar"
    );
    assert_eq!(
        r(r#"foo{{.foo}}buzz{{ .bar | replace "blop" "bar" }}"#, FB),
        "fooblipbuzzbar"
    );
    assert_eq!(r("{{.foo | title }}", FB), "Blip");
    assert_eq!(
        r(
            "{{.foo | substr 1 3 }} {{ .bar  | trunc 1 }} {{ .bar  | trunc 3 }}",
            FB
        ),
        "li b blo"
    );
    assert_eq!(
        r(
            r#"{{.foo | trim }} {{ .bar  | trimAll "op" }} {{ .bar  | trimPrefix "b" }} {{ .bar  | trimSuffix "p" }}"#,
            &[("foo", "  blip "), ("bar", "blop")]
        ),
        "blip bl lop blo"
    );
    assert_eq!(
        r(
            "{{.foo | lower }} {{ .bar  | upper }}",
            &[("foo", "BLIp"), ("bar", "blop")]
        ),
        "blip BLOP"
    );
    assert_eq!(r(r#"{{ "foo" | repeat 3 }}"#, &[]), "foofoofoo");
    assert_eq!(
        r(r#"{{ "foo\n bar" | indent 4 }}"#, &[]),
        "    foo\n     bar"
    );
    assert_eq!(r(r#"{{ "foo" | nindent 2 }}"#, &[]), "\n  foo");
    let b = &[("foo", "BLIp"), ("bar", "blop")];
    assert_eq!(
        r(
            r#"{{ if  .foo | contains "p"}}yes{{end}}-{{ if  .foo | contains "z"}}no{{end}}"#,
            b
        ),
        "yes-"
    );
    assert_eq!(
        r(
            r#"{{ if  .foo | hasPrefix "BL" }}yes{{end}}-{{ if  .foo | hasPrefix "p"}}no{{end}}"#,
            b
        ),
        "yes-"
    );
    assert_eq!(
        r(
            r#"{{ if  .foo | hasSuffix "Ip" }}yes{{end}}-{{ if  .foo | hasSuffix "pw"}}no{{end}}"#,
            b
        ),
        "yes-"
    );
    assert_eq!(r(r#"{{ regexReplaceAll "(p)" .foo "t" }}"#, b), "BLIt");
    assert_eq!(
        r(r#"{{ regexReplaceAllLiteral "(p)" .foo "${1}" }}"#, b),
        "BLI${1}"
    );
    assert_eq!(
        r(r#"{{ regexReplaceAll "(?P<x>I)(p)" .foo "${2}$x" }}"#, b),
        "BLpI"
    );
    assert_eq!(
        r("foo {{.foo}}buzz{{  .bar  }}", &[("bar", "blop")]),
        "foo buzzblop"
    );
    assert_eq!(
        r("foo {{.foo | ToUpper }} buzz{{  .bar  }}", FB),
        "foo BLIP buzzblop"
    );
}

#[test]
fn loki_url_cases() {
    let raw = r#"/loki/api/v1/query?query=sum(count_over_time({stream_filter="some_stream",environment="prod", host=~"someec2.*"}"#;
    let enc = "%2Floki%2Fapi%2Fv1%2Fquery%3Fquery%3Dsum%28count_over_time%28%7Bstream_filter%3D%22some_stream%22%2Cenvironment%3D%22prod%22%2C+host%3D~%22someec2.%2A%22%7D";
    assert_eq!(
        r(
            "{{.foo | urlencode }} {{ urlencode .foo }}",
            &[("foo", raw)]
        ),
        format!("{enc} {enc}")
    );
    assert_eq!(
        r(
            "{{.foo | urldecode }} {{ urldecode .foo }}",
            &[("foo", enc)]
        ),
        format!("{raw} {raw}")
    );
    assert!(
        render_at("{{ urldecode .foo }}", &[("foo", "%zz")], "", 0)
            .unwrap_err()
            .contains("invalid URL escape")
    );
}

#[test]
fn loki_math_cases() {
    let l = &[("foo", "1"), ("bar", "3"), ("baz", "10"), ("bazz", "20")];
    assert_eq!(
        r("{{ add .foo 1 | sub .bar | mul .baz | div .bazz}}", l),
        "2"
    );
    let l = &[
        ("foo", "1.5"),
        ("bar", "5"),
        ("baz", "10.5"),
        ("bazz", "20.2"),
    ];
    assert_eq!(
        r(
            "{{ addf .foo 1.5 | subf .bar 1.5 | mulf .baz | divf .bazz }}",
            l
        ),
        "3.8476190476190477"
    );
    let l = &[
        ("foo", "1.5"),
        ("bar", "3.5"),
        ("baz", "10.5"),
        ("bazz", "20.4"),
    ];
    assert_eq!(
        r(
            "{{ round (addf .foo 1.5 | subf .bar | mulf .baz | divf .bazz) 5 .2}}",
            l
        ),
        "3.88572"
    );
    let l = &[("foo", "5"), ("bar", "10"), ("baz", "15")];
    assert_eq!(
        r(
            "min is {{ min .foo .bar .baz }} and max is {{ max .foo .bar .baz }}",
            l
        ),
        "min is 5 and max is 15"
    );
    let l = &[("foo", "5.3"), ("bar", "10.5"), ("baz", "15.2")];
    assert_eq!(
        r(
            "minf is {{ minf .foo .bar .baz }} and maxf is {{maxf .foo .bar .baz}}",
            l
        ),
        "minf is 5.3 and maxf is 15.2"
    );
    assert_eq!(
        r(
            "ceil is {{ ceil .foo }} and floor is {{floor .foo }}",
            &[("foo", "5.3")]
        ),
        "ceil is 6 and floor is 5"
    );
    assert_eq!(r("mod is {{ mod .foo 3 }}", &[("foo", "20")]), "mod is 2");
    assert_eq!(r(r#"{{ "2.5" | float64 | int | add 10}}"#, &[]), "12");
    assert_eq!(r("{{ addf 0.1 0.2 }}", &[]), "0.3");
    assert_eq!(r("{{ divf 1 3 }}", &[]), "0.3333333333333333");
    assert_eq!(r(r#"{{ add "0x10" "12.0" "x" }}"#, &[]), "28");
    assert!(
        render_at("{{ div 1 0 }}", &[], "", 0)
            .unwrap_err()
            .ends_with("integer divide by zero")
    );
}

#[test]
fn loki_time_cases() {
    assert_eq!(
        r(
            r#"{{ sub (unixEpoch (toDate "2006-01-02" "2021-11-02")) (unixEpoch (toDate "2006-01-02" "2021-11-01")) }}"#,
            &[]
        ),
        "86400"
    );
    assert_eq!(
        r(
            r#"{{ date "2006-01-02" (toDate "2006-01-02" "2021-11-02") }}"#,
            &[]
        ),
        "2021-11-02"
    );
    assert_eq!(r("{{ div (unixEpoch now) (unixEpoch now) }}", &[]), "1");
    assert_eq!(
        render_at(
            r#"{{ __timestamp__ | date "2006-01-02" }} bar {{ .bar }}"#,
            &[("bar", "2")],
            "1",
            1656331200000000000
        )
        .unwrap(),
        "2022-06-27 bar 2"
    );
    assert_eq!(
        render_at(
            "{{ __timestamp__ | unixEpoch }} bar {{ .bar }}",
            &[("bar", "2")],
            "1",
            1656353124120000000
        )
        .unwrap(),
        "1656353124 bar 2"
    );
    assert_eq!(
        render_at(
            "{{ __timestamp__ | unixEpochMillis }} {{ __timestamp__ | unixEpochNanos }}",
            &[],
            "",
            1656353124120000000
        )
        .unwrap(),
        "1656353124120 1656353124120000000"
    );
    assert_eq!(
        render_at("{{ __timestamp__ }}", &[], "", 1656353124120000000).unwrap(),
        "2022-06-27 18:05:24.12 +0000 UTC"
    );
    assert_eq!(
        r(
            r#"{{ toDateInZone "2006-01-02T15:04:05.999999999Z" "America/New_York" .foo | unixEpoch }}"#,
            &[("foo", "2023-03-10T08:05:13.123456789Z")]
        ),
        "1678453513"
    );
    assert_eq!(
        r(
            "{{ .foo | unixToTime | unixEpoch }}",
            &[("foo", "1679577215")]
        ),
        "1679577215"
    );
    assert_eq!(
        r(
            "{{ .foo | unixToTime | unixEpochMillis }}",
            &[("foo", "1679577215123")]
        ),
        "1679577215123"
    );
    assert_eq!(
        r(
            r#"{{ .foo | unixToTime | date "2006-01-02" }}"#,
            &[("foo", "19437")]
        ),
        "2023-03-21"
    );
    assert_eq!(
        render_at("{{ .foo | unixToTime }}", &[("foo", "123")], "", 0).unwrap_err(),
        "template: line:1:10: executing \"line\" at <unixToTime>: error calling unixToTime: unable to parse time '123': %!w(<nil>)"
    );
    assert_eq!(
        r(r#"{{ toDate "2006-01-02" "bad" | unixEpoch }}"#, &[]),
        "-62135596800"
    );
}

#[test]
fn loki_misc_cases() {
    assert_eq!(
        render_at("{{ __line__ }} bar {{ .bar }}", &[("bar", "2")], "1", 0).unwrap(),
        "1 bar 2"
    );
    assert_eq!(
        r(
            r#"{{.foo | default "-" }}{{.bar | default "-"}}{{.unknown | default "-"}}"#,
            &[("foo", "blip"), ("bar", "")]
        ),
        "blip--"
    );
    assert_eq!(r("{{ .foo | bytes }}", &[("foo", "3 kB")]), "3000");
    assert_eq!(r("{{ .foo | bytes }}", &[("foo", "3MB")]), "3e+06");
    assert_eq!(r("{{ .foo | duration }}", &[("foo", "3ms")]), "0.003");
    assert_eq!(
        r("{{ .foo | duration_seconds }}", &[("foo", "3m10s")]),
        "190"
    );
    assert_eq!(
        r(
            "{{ .foo | b64enc }}|{{ .bar | b64dec }}",
            &[("foo", "hello"), ("bar", "aGVsbG8")]
        ),
        "aGVsbG8=|hello"
    );
    assert_eq!(
        r("{{ b64dec .foo }}", &[("foo", "!!!!")]),
        "illegal base64 data at input byte 0"
    );
    assert_eq!(
        r(
            "[{{ alignLeft 5 .foo }}][{{ alignRight 5 .foo }}][{{ alignLeft 2 .foo }}][{{ alignRight 2 .foo }}]",
            &[("foo", "abc")]
        ),
        "[abc  ][  abc][ab][bc]"
    );
    assert_eq!(
        r(
            "{{ .foo | TrimSpace | TrimPrefix \"x\" | ToLower }}",
            &[("foo", "  xABC ")]
        ),
        "x"
    );
    assert_eq!(
        r(
            r#"{{ Trim .foo "-" }}|{{ TrimLeft .foo "-" }}|{{ TrimRight .foo "-" }}"#,
            &[("foo", "--a--")]
        ),
        "a|a--|--a"
    );
}

#[test]
fn loki_error_cases() {
    assert_eq!(
        render_at(r#"{{.foo Replace "foo"}}"#, FB, "", 0).unwrap_err(),
        "template: line:1:2: executing \"line\" at <.foo>: foo is not a method but has arguments"
    );
    assert_eq!(
        render_at("{{.foo | now}}", FB, "", 0).unwrap_err(),
        "template: line:1:9: executing \"line\" at <now>: wrong number of args for now: want 0 got 1"
    );
    let e = Template::compile("a {{ foo .bar }}").unwrap_err();
    assert_eq!(e.message, "function \"foo\" not defined");
    assert_eq!(e.offset, 5);
    assert_eq!(
        Template::compile("{{ sha256sum .a }}").unwrap_err().message,
        "function \"sha256sum\" not defined"
    );
    assert!(Template::compile("{{ .a ").is_err());
    assert!(Template::compile("{{ if .a }}x").is_err());
    assert!(Template::compile("{{ end }}").is_err());
    assert!(Template::compile("{{ $x }}").is_err());
    assert!(Template::compile("{{ break }}").is_err());
}

#[test]
fn go_template_features() {
    assert_eq!(r("a  {{- .foo -}}  b", FB), "ablipb");
    assert_eq!(
        r("a {{/* comment */}}b {{- /* trimmed */ -}} c", FB),
        "a bc"
    );
    assert_eq!(
        r(
            r#"{{ if eq .foo "blip" }}1{{ else if eq .foo "x" }}2{{ else }}3{{ end }}"#,
            FB
        ),
        "1"
    );
    assert_eq!(
        r(
            r#"{{ if eq .foo "x" }}1{{ else if eq .bar "blop" }}2{{ else }}3{{ end }}"#,
            FB
        ),
        "2"
    );
    assert_eq!(
        r(
            r#"{{ if and (eq .foo "x") .bar }}1{{ else }}3{{ end }}"#,
            FB
        ),
        "3"
    );
    assert_eq!(
        r(
            r#"{{ or .missing "fallback" }} {{ and .foo .bar }} {{ not .missing }}"#,
            FB
        ),
        "fallback blop true"
    );
    assert_eq!(
        r(r#"{{ if ne .foo "blip" }}y{{ else }}n{{ end }}"#, FB),
        "n"
    );
    assert_eq!(
        r(
            r#"{{ if gt (int .n) 5 }}big{{ end }}{{ if lt .a .b }}lt{{ end }}"#,
            &[("n", "7"), ("a", "a"), ("b", "b")]
        ),
        "biglt"
    );
    assert_eq!(
        r(r#"{{ eq .foo "x" "blip" }} {{ le 2 2 }} {{ ge 1 2 }}"#, FB),
        "true true false"
    );
    assert!(
        render_at("{{ lt 1 1.5 }}", &[], "", 0)
            .unwrap_err()
            .contains("incompatible types for comparison")
    );
    assert_eq!(r(r#"{{ printf "%s-%d" .foo 3 }}"#, FB), "blip-3");
    assert_eq!(
        r(
            r#"{{ printf "%.2f|%5s|%-5s|%q|%x|%v" 3.14159 "ab" "ab" "q" 255 true }}"#,
            &[]
        ),
        "3.14|   ab|ab   |\"q\"|ff|true"
    );
    assert_eq!(
        r(
            "{{ $x := .foo }}{{ $x }}-{{ $x = .bar }}{{ $x }}-{{ $.foo }}",
            FB
        ),
        "blip-blop-blip"
    );
    assert_eq!(
        r(
            "{{ with .foo }}[{{ . }}]{{ else }}none{{ end }}{{ with .nope }}x{{ else }}none{{ end }}",
            FB
        ),
        "[blip]none"
    );
    assert_eq!(
        r(
            "{{ (.foo) }} {{ print 1 2 \"a\" }} {{ len .foo }} {{ index . \"bar\" }}",
            FB
        ),
        "blip 1 2a 4 blop"
    );
    assert_eq!(
        r(
            "{{ `raw\\n` }} {{ 'a' }} {{ 0x10 }} {{ 1e3 }} {{ -2 }} {{ true }} {{ print nil }}",
            &[]
        ),
        "raw\\n 97 16 1000 -2 true <nil>"
    );
    assert!(
        render_at("{{ .missing.field }}", &[], "", 0)
            .unwrap_err()
            .ends_with("can't evaluate field field in type string")
    );
}

#[test]
fn range_and_json() {
    let l = &[("j", r#"{"a":{"b":"deep"},"list":[1,2.5,"x"],"n":3}"#)];
    assert_eq!(r("{{ (fromJson .j).a.b }}", l), "deep");
    assert_eq!(
        r(
            "{{ $d := fromJson .j }}{{ $d.n }} {{ $d.list }} {{ $d.missing }}",
            l
        ),
        "3 [1 2.5 x] <no value>"
    );
    assert_eq!(
        r(
            "{{ range $i, $e := (fromJson .j).list }}{{ $i }}={{ $e }};{{ end }}",
            l
        ),
        "0=1;1=2.5;2=x;"
    );
    assert_eq!(
        r(
            "{{ range (fromJson .j).list }}{{ if eq (printf \"%v\" .) \"x\" }}{{ break }}{{ end }}{{ . }},{{ end }}",
            l
        ),
        "1,2.5,"
    );
    assert_eq!(
        r("{{ range $k, $v := . }}{{ $k }}:{{ $v }} {{ end }}", FB),
        "bar:blop foo:blip "
    );
    assert_eq!(r("{{ range 3 }}{{ . }}{{ end }}", &[]), "012");
    assert_eq!(
        r(
            "{{ range (fromJson \"[]\") }}x{{ else }}empty{{ end }}",
            &[]
        ),
        "empty"
    );
    assert_eq!(r("{{ fromJson \"not json\" }}", &[]), "<no value>");
    assert_eq!(r("{{ . }}", FB), "map[bar:blop foo:blip]");
}

#[test]
fn planning_helpers() {
    let t = Template::compile(
        r#"{{ .a | ToUpper }} {{ if .b }}{{ .c.d }}{{ end }} {{ printf "%s" (lower .e) }}"#,
    )
    .unwrap();
    assert_eq!(t.referenced_labels(), vec!["a", "b", "c", "d", "e"]);
    assert_eq!(
        Template::compile("{{.message}}").unwrap().simple_label(),
        Some("message")
    );
    assert_eq!(
        Template::compile("x{{.message}}").unwrap().simple_label(),
        None
    );
    assert!(funcs::names().contains(&"regexReplaceAll"));
}

#[test]
fn unicode_text() {
    assert_eq!(
        r(
            "ü {{ .foo | upper }} 👌 {{ .foo | title }}",
            &[("foo", "élan vital")]
        ),
        "ü ÉLAN VITAL 👌 Élan Vital"
    );
    assert_eq!(r("{{ .foo | trunc 2 }}", &[("foo", "éa")]), "é");
}

#[test]
fn time_methods_of_the_timestamp() {
    let ts = 1_700_000_001_250_000_000;
    assert_eq!(
        render_at(
            "{{ (__timestamp__).Unix }} {{ (__timestamp__).UnixMilli }}",
            &[],
            "",
            ts
        )
        .unwrap(),
        "1700000001 1700000001250"
    );
    assert!(render_at("{{ (__timestamp__).Bogus }}", &[], "", ts).is_err());
}

fn alert(text: &str, data: &AlertData) -> Result<String, String> {
    Template::compile_alert(text, "__alert_Test")
        .map_err(|e| e.to_string())?
        .render_alert(data)
}

#[test]
fn alert_templates_read_prometheus_data() {
    let data = AlertData {
        labels: vec![("instance".into(), "web-1:9090".into())],
        external_labels: vec![("cluster".into(), "eu".into())],
        external_url: "http://o11ydb.example:3100/prefix".into(),
        value: 0.98765,
    };
    let cases = [
        (
            "{{ $labels.instance }} is {{ $value }}",
            "web-1:9090 is 0.98765",
        ),
        ("{{ .Labels.instance }}/{{ .Value }}", "web-1:9090/0.98765"),
        ("{{ $externalLabels.cluster }}", "eu"),
        ("{{ $value | humanizePercentage }}", "98.77%"),
        ("{{ humanize 1234567 }}", "1.235M"),
        ("{{ humanizeDuration 3725 }}", "1h 2m 5s"),
        ("{{ printf \"%.2f\" $value }}", "0.99"),
        ("{{ $labels.instance | stripPort | toUpper }}", "WEB-1"),
        (
            "{{ if match \"^web\" $labels.instance }}web{{ end }}",
            "web",
        ),
        (
            "{{ reReplaceAll \"-(\\\\d)\" \"#$1\" $labels.instance }}",
            "web#1:9090",
        ),
        (
            "{{ externalURL }} {{ pathPrefix }} {{ $externalURL }}",
            "http://o11ydb.example:3100/prefix /prefix http://o11ydb.example:3100/prefix",
        ),
        ("{{ $labels.missing }}.", "."),
        ("{{ title \"hello world\" }}", "Hello World"),
    ];
    for (text, want) in cases {
        assert_eq!(alert(text, &data).unwrap(), want, "{text}");
    }
    // Loki-only functions are unknown to alerting templates and vice versa.
    let e = Template::compile_alert("{{ __line__ }}", "a").unwrap_err();
    assert!(
        e.message.contains("function \"__line__\" not defined"),
        "{e}"
    );
    let e = Template::compile("{{ humanize 1 }}").unwrap_err();
    assert!(
        e.message.contains("function \"humanize\" not defined"),
        "{e}"
    );
    let e = Template::compile("{{ $value }}").unwrap_err();
    assert!(e.message.contains("undefined variable"), "{e}");
    let e = alert("{{ humanize \"x\" }}", &data).unwrap_err();
    assert!(
        e.contains("__alert_Test") && e.contains("invalid syntax"),
        "{e}"
    );
}
