//! Opt-outs a customer expresses in a message. Meta does not process "STOP" for the business: a
//! customer who asks to stop must be suppressed by Ventana itself. Two kinds of message can
//! change consent ([`InboundMessage::consent_text`](crate::model::InboundMessage::consent_text)),
//! each matched against its own configurable list, after normalisation (case, accents,
//! punctuation and spaces), and only as a whole, so "please don't stop" is not an opt-out:
//!
//! - **Typed text** (`text.body`) against the stop and start keywords (`OPT_OUT_KEYWORDS`,
//!   `OPT_IN_KEYWORDS`): an opt-out or opt-in of scope `all`.
//! - **A tap on a template's quick-reply button** (`type: button`), its label or its payload,
//!   against the opt-out buttons (`OPT_OUT_BUTTONS`): an opt-out of scope `marketing`. Such a
//!   button sits on a marketing template (Meta's "Stop promotions"), and tapping it asks for no
//!   more promotions, not for silence: order updates and replies still go out. A button never
//!   opts back in (a typed START, newer, resumes marketing too: [`crate::consent`]).
//!
//! Interactive replies (`button_reply`, `list_reply`) are never matched: their titles are the
//! business's own menu, so a "Cancel" or "Voltar" there means cancel this or go back, not stop
//! or resume. A business that offers an opt-out in such a menu knows what its button means and
//! records it through the API (`PUT /v1/consents/…`).
//!
//! The button list is separate and short for the same reason: a template's buttons are also
//! the business's words, and generic stop keywords (CANCEL, END, QUIT, SAIR, …) are common
//! labels there. Only labels that can only mean "stop promotions" are in it.
//!
//! Typed CANCEL, END and QUIT stay stop keywords: with STOP, STOPALL and UNSUBSCRIBE they are
//! the carrier-standard SMS stop words, which customers send to stop, and a customer who meant
//! something else and writes again is back in a conversation (session replies go out again,
//! [`crate::outbound::policy`]). An operator whose customers type a bare "cancel" to cancel an
//! order sets `OPT_OUT_KEYWORDS` without it.

use crate::consent::{SCOPE_ALL, SCOPE_MARKETING};
use crate::model::ConsentText;
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

/// Default opt-out buttons: a template quick-reply button whose label or payload is one of
/// these opts the customer out of marketing. Meta's marketing opt-out button ("Stop
/// promotions") in the same languages as [`DEFAULT_STOP`], Meta's own example label
/// ("Unsubscribe from Promos"), and STOP and UNSUBSCRIBE. Meta localises its button's label;
/// the translations here are ours, so a business whose templates say it otherwise lists its
/// labels in `OPT_OUT_BUTTONS`.
pub const DEFAULT_STOP_BUTTONS: &str = concat!(
    "STOP,UNSUBSCRIBE,STOP PROMOTIONS,UNSUBSCRIBE FROM PROMOS,",
    "DETENER PROMOCIONES,",
    "PARAR PROMOÇÕES,",
    "ARRÊTER LES PROMOTIONS,",
    "WERBUNG STOPPEN,",
    "INTERROMPI PROMOZIONI,",
    "HENTIKAN PROMOSI,",
    "PROMOTIES STOPPEN,",
    "PROMOSYONLARI DURDUR",
);

/// A change of consent a customer's message expresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentChange {
    /// [`SCOPE_ALL`] for a typed keyword, [`SCOPE_MARKETING`] for an opt-out button.
    pub scope: &'static str,
    /// Stop or resume.
    pub consent: Consent,
}

/// The configured keyword and button lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords {
    stop: Vec<String>,
    start: Vec<String>,
    buttons: Vec<String>,
}

impl Default for Keywords {
    fn default() -> Self {
        Self::parse(DEFAULT_STOP, DEFAULT_START, DEFAULT_STOP_BUTTONS)
    }
}

impl Keywords {
    /// Builds the lists from comma-separated entries: the typed stop and start keywords
    /// (`OPT_OUT_KEYWORDS`, `OPT_IN_KEYWORDS`) and the opt-out button labels
    /// (`OPT_OUT_BUTTONS`).
    pub fn parse(stop: &str, start: &str, buttons: &str) -> Self {
        let list = |s: &str| {
            s.split(',')
                .map(normalize)
                .filter(|k| !k.is_empty())
                .collect::<Vec<_>>()
        };
        Self {
            stop: list(stop),
            start: list(start),
            buttons: list(buttons),
        }
    }

    /// The consent change a message expresses, if any (see the module docs): typed text that
    /// is exactly a stop or start keyword changes scope `all`; a template button whose label
    /// or payload is exactly an opt-out button opts out of `marketing`.
    pub fn consent_change(&self, text: ConsentText<'_>) -> Option<ConsentChange> {
        match text {
            ConsentText::Typed(body) => self.classify(body).map(|consent| ConsentChange {
                scope: SCOPE_ALL,
                consent,
            }),
            ConsentText::TemplateButton { text, payload } => [text, payload]
                .into_iter()
                .flatten()
                .any(|t| is_in(&self.buttons, t))
                .then_some(ConsentChange {
                    scope: SCOPE_MARKETING,
                    consent: Consent::OptedOut,
                }),
        }
    }

    /// The consent typed text expresses, if it is exactly a keyword.
    fn classify(&self, text: &str) -> Option<Consent> {
        if is_in(&self.stop, text) {
            Some(Consent::OptedOut)
        } else if is_in(&self.start, text) {
            Some(Consent::OptedIn)
        } else {
            None
        }
    }
}

/// Whether `text`, normalised, is exactly one of `list` (already normalised). Long texts are
/// not read: no keyword or button label is longer than a few words.
fn is_in(list: &[String], text: &str) -> bool {
    text.len() <= 64 && list.contains(&normalize(text))
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
        let k = Keywords::parse("Désabonner, NÃO", "", "");
        assert_eq!(k.classify("desabonner"), Some(Consent::OptedOut));
        assert_eq!(k.classify("nao"), Some(Consent::OptedOut));
        assert_eq!(k.classify("stop"), None);
    }

    fn typed(t: &str) -> ConsentText<'_> {
        ConsentText::Typed(t)
    }

    fn button<'a>(text: Option<&'a str>, payload: Option<&'a str>) -> ConsentText<'a> {
        ConsentText::TemplateButton { text, payload }
    }

    const STOP_ALL: Option<ConsentChange> = Some(ConsentChange {
        scope: SCOPE_ALL,
        consent: Consent::OptedOut,
    });
    const START_ALL: Option<ConsentChange> = Some(ConsentChange {
        scope: SCOPE_ALL,
        consent: Consent::OptedIn,
    });
    const STOP_MARKETING: Option<ConsentChange> = Some(ConsentChange {
        scope: SCOPE_MARKETING,
        consent: Consent::OptedOut,
    });

    #[test]
    fn typed_keywords_change_scope_all_generic_ones_included() {
        let k = Keywords::default();
        for t in ["STOP", "cancel", "End.", "quit", "Sair", "cancelar"] {
            assert_eq!(k.consent_change(typed(t)), STOP_ALL, "{t}");
        }
        for t in ["start", "Voltar", "iniciar"] {
            assert_eq!(k.consent_change(typed(t)), START_ALL, "{t}");
        }
        assert_eq!(k.consent_change(typed("cancel my order")), None);
    }

    #[test]
    fn an_opt_out_button_stops_marketing_by_its_label_or_its_payload() {
        let k = Keywords::default();
        let labels = [
            ("en", "Stop promotions"),
            ("en", "STOP PROMOTIONS!"),
            ("en", "Unsubscribe from Promos"),
            ("en", "Unsubscribe"),
            ("en", "Stop"),
            ("es", "Detener promociones"),
            ("pt", "Parar promoções"),
            ("pt", "PARAR PROMOCOES"),
            ("fr", "Arrêter les promotions"),
            ("de", "Werbung stoppen"),
            ("it", "Interrompi promozioni"),
            ("id", "Hentikan promosi"),
            ("nl", "Promoties stoppen"),
            ("tr", "Promosyonları durdur"),
        ];
        for (lang, t) in labels {
            assert_eq!(
                k.consent_change(button(Some(t), None)),
                STOP_MARKETING,
                "{lang}: {t}"
            );
        }
        // The business's payload is enough when the label is in a language not listed.
        assert_eq!(
            k.consent_change(button(
                Some("Dejar de recibir ofertas"),
                Some("UNSUBSCRIBE")
            )),
            STOP_MARKETING
        );
        assert_eq!(
            k.consent_change(button(Some("Ver ofertas"), Some("offers-1"))),
            None
        );
    }

    #[test]
    fn generic_stop_and_start_words_on_a_button_change_nothing() {
        let k = Keywords::default();
        for t in [
            "Cancel",
            "END",
            "Quit",
            "Cancelar",
            "Sair",
            "Baja",
            "Parar",
            "İptal",
            "Voltar",
            "Iniciar",
            "Start",
            "Resume",
            "Subscribe",
        ] {
            assert_eq!(k.consent_change(button(Some(t), None)), None, "label {t}");
            assert_eq!(k.consent_change(button(None, Some(t))), None, "payload {t}");
        }
    }

    #[test]
    fn opt_out_buttons_are_configurable_and_replace_the_defaults() {
        let k = Keywords::parse(DEFAULT_STOP, DEFAULT_START, "Sair das promoções, NO_PROMOS");
        assert_eq!(
            k.consent_change(button(Some("sair das promocoes"), None)),
            STOP_MARKETING
        );
        assert_eq!(
            k.consent_change(button(Some("Ofertas"), Some("no_promos"))),
            STOP_MARKETING
        );
        assert_eq!(
            k.consent_change(button(Some("Stop promotions"), None)),
            None
        );
        // The typed keywords are a list of their own.
        assert_eq!(k.consent_change(typed("stop")), STOP_ALL);
        assert_eq!(k.consent_change(typed("Sair das promoções")), None);
    }
}
