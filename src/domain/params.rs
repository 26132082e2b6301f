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

fn float(
    raw: &str,
    field: &'static str,
    label: &str,
    min: f64,
    max: f64,
    errors: &mut Vec<ParamError>,
) -> Option<f64> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= min && v <= max => Some(v),
        _ => {
            errors.push(ParamError {
                field,
                message: format!("{label} must be a number from {min} to {max}."),
            });
            None
        }
    }
}

fn int(
    raw: &str,
    field: &'static str,
    label: &str,
    min: i64,
    max: i64,
    errors: &mut Vec<ParamError>,
    hint: &str,
) -> Option<i64> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    match s.parse::<i64>() {
        Ok(v) if v >= min && v <= max => Some(v),
        _ => {
            errors.push(ParamError {
                field,
                message: format!("{label} must be a whole number from {min} to {max}{hint}."),
            });
            None
        }
    }
}

impl Params {
    /// Validates `raw`; `max_output` is the most tokens the chosen model may generate.
    pub fn parse(raw: &RawParams, max_output: i64) -> Result<Params, Vec<ParamError>> {
        let mut e = Vec::new();
        let temperature = float(
            &raw.temperature,
            "temperature",
            "Temperature",
            0.0,
            2.0,
            &mut e,
        );
        let top_p = float(&raw.top_p, "top_p", "Top P", 0.0, 1.0, &mut e);
        let top_k = int(&raw.top_k, "top_k", "Top K", 0, 1000, &mut e, "");
        let max_tokens = int(
            &raw.max_tokens,
            "max_tokens",
            "Max tokens",
            1,
            max_output.max(1),
            &mut e,
            " (this model's limit)",
        );
        let seed = int(
            &raw.seed,
            "seed",
            "Seed",
            0,
            i64::from(u32::MAX),
            &mut e,
            "",
        );
        let presence_penalty = float(
            &raw.presence_penalty,
            "presence_penalty",
            "Presence penalty",
            -2.0,
            2.0,
            &mut e,
        );
        let frequency_penalty = float(
            &raw.frequency_penalty,
            "frequency_penalty",
            "Frequency penalty",
            -2.0,
            2.0,
            &mut e,
        );
        let stop: Vec<String> = raw
            .stop
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty())
            .map(|l| l.replace("\\n", "\n"))
            .collect();
        if stop.len() > MAX_STOP_SEQUENCES {
            e.push(ParamError {
                field: "stop",
                message: format!("Use at most {MAX_STOP_SEQUENCES} stop sequences, one per line."),
            });
        }
        if stop.iter().any(|s| s.chars().count() > MAX_STOP_CHARS) {
            e.push(ParamError {
                field: "stop",
                message: format!(
                    "Each stop sequence may have at most {MAX_STOP_CHARS} characters."
                ),
            });
        }
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
        if system.contains('\0') || raw.stop.contains('\0') {
            e.push(ParamError {
                field: if system.contains('\0') {
                    "system_prompt"
                } else {
                    "stop"
                },
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
}
