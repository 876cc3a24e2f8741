//! Opt-out keywords. Meta does not process "STOP" for the business: a customer who writes a
//! stop keyword must be suppressed by Ventana itself. Keywords are configurable, compared after
//! normalisation (case, accents, surrounding punctuation and spaces), and match only a whole
//! message, so "please don't stop" is not an opt-out.

use crate::ports::Consent;

/// Default stop keywords: English, Spanish, Portuguese, French, German, Italian, Indonesian,
/// Dutch and Turkish (written with their accents; they are folded like a message is). Each is
/// a whole message a customer plausibly sends to stop, not a word that also starts a chat.
pub const DEFAULT_STOP: &str = concat!(
    "STOP,STOPALL,STOP ALL,UNSUBSCRIBE,CANCEL,END,QUIT,",
    "BAJA,PARAR,DETENER,CANCELAR,",
    "SAIR,DESCADASTRAR,",
    "ARRÊT,ARRÊTER,DÉSABONNER,DÉSINSCRIRE,DÉSINSCRIPTION,",
    "STOPP,ABMELDEN,ABBESTELLEN,KÜNDIGEN,",
    "FERMA,BASTA,DISISCRIVI,DISISCRIVIMI,CANCELLAMI,",
    "BERHENTI,BERHENTI LANGGANAN,",
    "STOPPEN,AFMELDEN,UITSCHRIJVEN,",
    "DUR,İPTAL,ABONELİKTEN ÇIK",
);
/// Default resume keywords, in the same languages.
pub const DEFAULT_START: &str = concat!(
    "START,UNSTOP,RESUME,SUBSCRIBE,",
    "ALTA,REANUDAR,",
    "VOLTAR,INICIAR,",
    "REPRENDRE,DÉMARRER,",
    "FORTSETZEN,ANMELDEN,",
    "RIPRENDI,ISCRIVIMI,",
    "MULAI,LANJUT,",
    "HERVATTEN,AANMELDEN,",
    "BAŞLA,DEVAM",
);

/// The configured keyword lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords {
    stop: Vec<String>,
    start: Vec<String>,
}

impl Default for Keywords {
    fn default() -> Self {
        Self::parse(DEFAULT_STOP, DEFAULT_START)
    }
}

impl Keywords {
    /// Builds the lists from comma-separated keywords (`OPT_OUT_KEYWORDS`, `OPT_IN_KEYWORDS`).
    pub fn parse(stop: &str, start: &str) -> Self {
        let list = |s: &str| {
            s.split(',')
                .map(normalize)
                .filter(|k| !k.is_empty())
                .collect::<Vec<_>>()
        };
        Self {
            stop: list(stop),
            start: list(start),
        }
    }

    /// The consent a message's text expresses, if it is exactly a keyword.
    pub fn classify(&self, text: &str) -> Option<Consent> {
        if text.len() > 64 {
            return None;
        }
        let t = normalize(text);
        if self.stop.contains(&t) {
            Some(Consent::OptedOut)
        } else if self.start.contains(&t) {
            Some(Consent::OptedIn)
        } else {
            None
        }
    }
}

/// Upper-cases, folds common Latin accents, drops punctuation and collapses spaces.
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.trim().chars() {
        let c = fold(c);
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_uppercase());
        } else if c.is_whitespace() {
            space = true;
        }
    }
    out
}

fn fold(c: char) -> char {
    match c {
        'á' | 'à' | 'â' | 'ã' | 'ä' | 'Á' | 'À' | 'Â' | 'Ã' | 'Ä' => 'a',
        'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' | 'Í' | 'Ì' | 'Î' | 'Ï' => 'i',
        'ó' | 'ò' | 'ô' | 'õ' | 'ö' | 'Ó' | 'Ò' | 'Ô' | 'Õ' | 'Ö' => 'o',
        'ú' | 'ù' | 'û' | 'ü' | 'Ú' | 'Ù' | 'Û' | 'Ü' => 'u',
        'ç' | 'Ç' => 'c',
        'ñ' | 'Ñ' => 'n',
        // Turkish: dotted capital and dotless small i, s and g with their marks.
        'ı' | 'İ' => 'i',
        'ş' | 'Ş' => 's',
        'ğ' | 'Ğ' => 'g',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_message_keywords_match_after_normalisation() {
        let k = Keywords::default();
        for t in [
            "STOP", "stop", " Stop! ", "baja", "Baja.", "PARAR", "stop all",
        ] {
            assert_eq!(k.classify(t), Some(Consent::OptedOut), "{t}");
        }
        for t in ["start", "Alta", "REANUDAR"] {
            assert_eq!(k.classify(t), Some(Consent::OptedIn), "{t}");
        }
        for t in ["please don't stop", "stopper", "", "hola"] {
            assert_eq!(k.classify(t), None, "{t}");
        }
    }

    #[test]
    fn default_keywords_cover_more_languages_with_accents_folded() {
        let k = Keywords::default();
        let stop = [
            ("fr", "Arrêt"),
            ("fr", "ARRET"),
            ("fr", "désabonner"),
            ("fr", "Desinscrire !"),
            ("de", "Stopp"),
            ("de", "abmelden"),
            ("de", "kündigen"),
            ("de", "KUNDIGEN"),
            ("it", "Basta"),
            ("it", "disiscrivimi"),
            ("id", "berhenti"),
            ("id", "Berhenti  langganan"),
            ("nl", "afmelden"),
            ("nl", "Uitschrijven."),
            ("tr", "iptal"),
            ("tr", "İPTAL"),
            ("tr", "IPTAL"),
            ("tr", "abonelikten çık"),
            ("tr", "ABONELIKTEN CIK"),
            ("tr", "dur"),
        ];
        for (lang, t) in stop {
            assert_eq!(k.classify(t), Some(Consent::OptedOut), "{lang}: {t}");
        }
        let start = [
            ("fr", "Démarrer"),
            ("fr", "reprendre"),
            ("de", "Fortsetzen"),
            ("it", "riprendi"),
            ("id", "Mulai"),
            ("nl", "hervatten"),
            ("tr", "başla"),
            ("tr", "BASLA"),
        ];
        for (lang, t) in start {
            assert_eq!(k.classify(t), Some(Consent::OptedIn), "{lang}: {t}");
        }
        // Sentences that contain a keyword are not opt-outs.
        for t in [
            "bitte nicht abmelden",
            "je veux arrêter de fumer",
            "dur mal",
        ] {
            assert_eq!(k.classify(t), None, "{t}");
        }
    }

    #[test]
    fn no_default_keyword_is_both_stop_and_start() {
        let k = Keywords::default();
        for s in &k.stop {
            assert!(!k.start.contains(s), "{s} is in both lists");
        }
    }

    #[test]
    fn keywords_are_configurable_with_accents() {
        let k = Keywords::parse("Désabonner, NÃO", "");
        assert_eq!(k.classify("desabonner"), Some(Consent::OptedOut));
        assert_eq!(k.classify("nao"), Some(Consent::OptedOut));
        assert_eq!(k.classify("stop"), None);
    }
}
