//! Sampling parameters, parsed from what a person typed into validated values.
//!
//! Ranges follow what providers really accept (OpenAI, vLLM, llama.cpp, Ollama), wider than the seed app's
//! sliders (temperature 0–1, top_k 0–100, max_tokens 1–3000); `max_tokens` is capped by the model's limit.

use serde::{Deserialize, Serialize};

/// Validated parameters. `None` means "not sent": the provider's default applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub max_tokens: Option<i64>,
    pub seed: Option<i64>,
    #[serde(default)]
    pub stop: Vec<String>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub system_prompt: Option<String>,
}

/// Parameters as typed in a form: text, empty meaning "not set". Stop sequences one per line.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawParams {
    pub temperature: String,
    pub top_p: String,
    pub top_k: String,
    pub max_tokens: String,
    pub seed: String,
    pub stop: String,
    pub presence_penalty: String,
    pub frequency_penalty: String,
    pub system_prompt: String,
}

/// One invalid field and what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    pub field: &'static str,
    pub message: String,
}

pub const MAX_STOP_SEQUENCES: usize = 4;
pub const MAX_STOP_CHARS: usize = 100;
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 32_000;

/// A parameter's value as it arrived: typed text from a form (empty = not set), or a JSON value from the API
/// (absent or null = not set). Both go through the same checks, so the ranges and messages are the same.
#[derive(Clone, Copy)]
enum Input<'a> {
    Text(&'a str),
    Json(Option<&'a serde_json::Value>),
}

impl<'a> Input<'a> {
    fn is_unset(self) -> bool {
        match self {
            Input::Text(s) => s.trim().is_empty(),
            Input::Json(v) => v.is_none_or(serde_json::Value::is_null),
        }
    }

    fn as_f64(self) -> Option<f64> {
        match self {
            Input::Text(s) => s.trim().parse().ok(),
            Input::Json(v) => v.and_then(serde_json::Value::as_f64),
        }
    }

    /// A whole number: JSON `3` or `3.0` (some clients send floats), text `3`.
    fn as_i64(self) -> Option<i64> {
        match self {
            Input::Text(s) => s.trim().parse().ok(),
            Input::Json(v) => v.and_then(|v| {
                v.as_i64().or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
            }),
        }
    }
}

/// A number parameter's name, label and range: one definition for every way parameters arrive, and for the
/// API's OpenAPI document (`web::api::openapi`), so the documented ranges are the checked ones.
pub struct Range<T> {
    pub field: &'static str,
    pub label: &'static str,
    pub min: T,
    pub max: T,
}

pub const TEMPERATURE: Range<f64> = Range {
    field: "temperature",
    label: "Temperature",
    min: 0.0,
    max: 2.0,
};
pub const TOP_P: Range<f64> = Range {
    field: "top_p",
    label: "Top P",
    min: 0.0,
    max: 1.0,
};
pub const TOP_K: Range<i64> = Range {
    field: "top_k",
    label: "Top K",
    min: 0,
    max: 1000,
};
pub const SEED: Range<i64> = Range {
    field: "seed",
    label: "Seed",
    min: 0,
    max: u32::MAX as i64,
};
pub const PRESENCE_PENALTY: Range<f64> = Range {
    field: "presence_penalty",
    label: "Presence penalty",
    min: -2.0,
    max: 2.0,
};
pub const FREQUENCY_PENALTY: Range<f64> = Range {
    field: "frequency_penalty",
    label: "Frequency penalty",
    min: -2.0,
    max: 2.0,
};

fn float(input: Input<'_>, r: &Range<f64>, errors: &mut Vec<ParamError>) -> Option<f64> {
    if input.is_unset() {
        return None;
    }
    match input.as_f64() {
        Some(v) if v.is_finite() && v >= r.min && v <= r.max => Some(v),
        _ => {
            errors.push(ParamError {
                field: r.field,
                message: format!("{} must be a number from {} to {}.", r.label, r.min, r.max),
            });
            None
        }
    }
}

fn int(input: Input<'_>, r: &Range<i64>, errors: &mut Vec<ParamError>, hint: &str) -> Option<i64> {
    if input.is_unset() {
        return None;
    }
    match input.as_i64() {
        Some(v) if v >= r.min && v <= r.max => Some(v),
        _ => {
            errors.push(ParamError {
                field: r.field,
                message: format!(
                    "{} must be a whole number from {} to {}{hint}.",
                    r.label, r.min, r.max
                ),
            });
            None
        }
    }
}

/// The fewest tokens an answer may be asked for (`max_tokens`, `max_completion_tokens`).
pub const MIN_MAX_TOKENS: i64 = 1;

/// The most tokens an answer may have: 1 to the model's limit.
fn max_tokens_range(field: &'static str, max_output: i64) -> Range<i64> {
    Range {
        field,
        label: "Max tokens",
        min: MIN_MAX_TOKENS,
        max: max_output.max(MIN_MAX_TOKENS),
    }
}

/// Checks stop sequences however they arrived.
fn check_stop(stop: &[String], errors: &mut Vec<ParamError>) {
    if stop.len() > MAX_STOP_SEQUENCES {
        errors.push(ParamError {
            field: "stop",
            message: format!("Use at most {MAX_STOP_SEQUENCES} stop sequences."),
        });
    }
    if stop.iter().any(|s| s.chars().count() > MAX_STOP_CHARS) {
        errors.push(ParamError {
            field: "stop",
            message: format!("Each stop sequence may have at most {MAX_STOP_CHARS} characters."),
        });
    }
    if stop.iter().any(|s| s.contains('\0')) {
        errors.push(ParamError {
            field: "stop",
            message: "Text cannot contain the NUL character (U+0000).".into(),
        });
    }
}

impl Params {
    /// Validates `raw`; `max_output` is the most tokens the chosen model may generate.
    pub fn parse(raw: &RawParams, max_output: i64) -> Result<Params, Vec<ParamError>> {
        let mut e = Vec::new();
        let t = Input::Text;
        let temperature = float(t(&raw.temperature), &TEMPERATURE, &mut e);
        let top_p = float(t(&raw.top_p), &TOP_P, &mut e);
        let top_k = int(t(&raw.top_k), &TOP_K, &mut e, "");
        let max_tokens = int(
            t(&raw.max_tokens),
            &max_tokens_range("max_tokens", max_output),
            &mut e,
            " (this model's limit)",
        );
        let seed = int(t(&raw.seed), &SEED, &mut e, "");
        let presence_penalty = float(t(&raw.presence_penalty), &PRESENCE_PENALTY, &mut e);
        let frequency_penalty = float(t(&raw.frequency_penalty), &FREQUENCY_PENALTY, &mut e);
        // One per line; `\n` typed stands for a line break inside a sequence.
        let stop: Vec<String> = raw
            .stop
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty())
            .map(|l| l.replace("\\n", "\n"))
            .collect();
        check_stop(&stop, &mut e);
        let system = raw.system_prompt.trim();
        if system.chars().count() > MAX_SYSTEM_PROMPT_CHARS {
            e.push(ParamError {
                field: "system_prompt",
                message: format!(
                    "The system prompt may have at most {MAX_SYSTEM_PROMPT_CHARS} characters."
                ),
            });
        }
        // Forms are checked at the edge (`web::nul`); this holds for every other way parameters arrive.
        if system.contains('\0') {
            e.push(ParamError {
                field: "system_prompt",
                message: "Text cannot contain the NUL character (U+0000).".into(),
            });
        }
        if !e.is_empty() {
            return Err(e);
        }
        Ok(Params {
            temperature,
            top_p,
            top_k,
            max_tokens,
            seed,
            stop,
            presence_penalty,
            frequency_penalty,
            system_prompt: (!system.is_empty()).then(|| system.to_string()),
        })
    }

    /// Validates the sampling fields of an API request body (OpenAI's names; `top_k` as llama.cpp and vLLM
    /// take it; `max_completion_tokens` as the newer name of `max_tokens`), with the same ranges and messages
    /// as the form. `stop` is a string or an array of strings. There is no system prompt here: an API request
    /// carries its own system message.
    pub fn from_json(
        body: &serde_json::Map<String, serde_json::Value>,
        max_output: i64,
    ) -> Result<Params, Vec<ParamError>> {
        let mut e = Vec::new();
        let j = |k: &str| Input::Json(body.get(k));
        let temperature = float(j("temperature"), &TEMPERATURE, &mut e);
        let top_p = float(j("top_p"), &TOP_P, &mut e);
        let top_k = int(j("top_k"), &TOP_K, &mut e, "");
        let max_field = if j("max_completion_tokens").is_unset() {
            "max_tokens"
        } else {
            "max_completion_tokens"
        };
        let max_tokens = int(
            j(max_field),
            &max_tokens_range(max_field, max_output),
            &mut e,
            " (this model's limit)",
        );
        let seed = int(j("seed"), &SEED, &mut e, "");
        let presence_penalty = float(j("presence_penalty"), &PRESENCE_PENALTY, &mut e);
        let frequency_penalty = float(j("frequency_penalty"), &FREQUENCY_PENALTY, &mut e);
        let stop = match body.get("stop") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(items)) if items.iter().all(|i| i.is_string()) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            Some(_) => {
                e.push(ParamError {
                    field: "stop",
                    message: "Stop must be a string or an array of strings.".into(),
                });
                Vec::new()
            }
        };
        check_stop(&stop, &mut e);
        if !e.is_empty() {
            return Err(e);
        }
        Ok(Params {
            temperature,
            top_p,
            top_k,
            max_tokens,
            seed,
            stop,
            presence_penalty,
            frequency_penalty,
            system_prompt: None,
        })
    }

    /// Back to form text, to show the values again.
    pub fn to_raw(&self) -> RawParams {
        let f = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let i = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        RawParams {
            temperature: f(self.temperature),
            top_p: f(self.top_p),
            top_k: i(self.top_k),
            max_tokens: i(self.max_tokens),
            seed: i(self.seed),
            stop: self
                .stop
                .iter()
                .map(|s| s.replace('\n', "\\n"))
                .collect::<Vec<_>>()
                .join("\n"),
            presence_penalty: f(self.presence_penalty),
            frequency_penalty: f(self.frequency_penalty),
            system_prompt: self.system_prompt.clone().unwrap_or_default(),
        }
    }

    /// `other`'s values where this one has none (model defaults under the user's choices).
    pub fn or(mut self, other: &Params) -> Params {
        self.temperature = self.temperature.or(other.temperature);
        self.top_p = self.top_p.or(other.top_p);
        self.top_k = self.top_k.or(other.top_k);
        self.max_tokens = self.max_tokens.or(other.max_tokens);
        self.seed = self.seed.or(other.seed);
        if self.stop.is_empty() {
            self.stop = other.stop.clone();
        }
        self.presence_penalty = self.presence_penalty.or(other.presence_penalty);
        self.frequency_penalty = self.frequency_penalty.or(other.frequency_penalty);
        if self.system_prompt.is_none() {
            self.system_prompt = other.system_prompt.clone();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(f: impl FnOnce(&mut RawParams)) -> RawParams {
        let mut r = RawParams::default();
        f(&mut r);
        r
    }

    #[test]
    fn empty_means_not_sent() {
        assert_eq!(
            Params::parse(&RawParams::default(), 4096).unwrap(),
            Params::default()
        );
    }

    #[test]
    fn valid_values_parse_and_round_trip() {
        let r = raw(|r| {
            r.temperature = "1.5".into();
            r.top_p = "0.9".into();
            r.top_k = "40".into();
            r.max_tokens = "600".into();
            r.seed = "7".into();
            r.stop = "END\n\\n\\n".into();
            r.presence_penalty = "-0.5".into();
            r.system_prompt = "  Be brief. ".into();
        });
        let p = Params::parse(&r, 4096).unwrap();
        assert_eq!(p.temperature, Some(1.5));
        assert_eq!(p.stop, vec!["END".to_string(), "\n\n".to_string()]);
        assert_eq!(p.system_prompt.as_deref(), Some("Be brief."));
        assert_eq!(Params::parse(&p.to_raw(), 4096).unwrap(), p);
    }

    #[test]
    fn out_of_range_values_name_the_field_and_range() {
        let r = raw(|r| {
            r.temperature = "2.5".into();
            r.top_p = "abc".into();
            r.top_k = "-1".into();
            r.max_tokens = "5000".into();
            r.frequency_penalty = "NaN".into();
            r.stop = "a\nb\nc\nd\ne".into();
        });
        let errors = Params::parse(&r, 4096).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "temperature",
                "top_p",
                "top_k",
                "max_tokens",
                "frequency_penalty",
                "stop"
            ]
        );
        assert!(errors[3].message.contains("1 to 4096 (this model's limit)"));
        assert_eq!(
            errors[0].message,
            "Temperature must be a number from 0 to 2."
        );
    }

    fn json(text: &str) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn json_numbers_have_the_forms_ranges_and_messages() {
        let p = Params::from_json(
            &json(r#"{"temperature": 0.7, "top_k": 40, "max_tokens": 100, "seed": 3.0, "stop": "END"}"#),
            4096,
        )
        .unwrap();
        assert_eq!(p.temperature, Some(0.7));
        assert_eq!(p.top_k, Some(40));
        assert_eq!(p.seed, Some(3));
        assert_eq!(p.stop, vec!["END".to_string()]);
        let p = Params::from_json(
            &json(r#"{"max_completion_tokens": 9, "temperature": null}"#),
            4096,
        )
        .unwrap();
        assert_eq!(p.max_tokens, Some(9));
        assert_eq!(p.temperature, None);

        let errors = Params::from_json(
            &json(r#"{"temperature": 2.5, "top_p": "0.5", "max_tokens": -1, "stop": [1]}"#),
            4096,
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["temperature", "top_p", "max_tokens", "stop"]);
        // The same sentence as the form's.
        let form = Params::parse(&raw(|r| r.temperature = "2.5".into()), 4096).unwrap_err();
        assert_eq!(errors[0].message, form[0].message);
        let e = Params::from_json(&json(r#"{"max_completion_tokens": 5000}"#), 4096).unwrap_err();
        assert_eq!(e[0].field, "max_completion_tokens");
        assert!(e[0].message.contains("this model's limit"));
    }
}
