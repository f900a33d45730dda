//! The OpenAPI document (`/openapi.json`) and a self-contained page that
//! renders it (`/docs`): no CDN, so it works on an isolated network.

use axum::response::Html;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::answer::JsonAnswer;
use crate::{requests, routes, wire};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Loss-and-theft suspension hotline", description = "Suspend lost or stolen Individual Number Cards and their JPKI certificates; answer validators. Errors are application/problem+json with a stable `code`."),
    paths(
        routes::suspensions::create, routes::suspensions::get, routes::suspensions::release, routes::holders::identify,
        routes::status::get, routes::status::batch, routes::rules::now, routes::health::healthz, routes::health::readyz,
    ),
    components(schemas(
        requests::SuspensionRequest, requests::HolderIn, requests::ReleaseRequest, requests::IdentifyRequest,
        wire::IdentifyAnswer, wire::IdentifiedCardOut, wire::IdentifiedSmartphoneOut,
        requests::BatchStatusQuery, requests::StatusQueryItem,
        wire::SuspensionReceipt, wire::SuspensionDetail, wire::CertificateOut, wire::RulesOut,
        wire::CertificateStatusOut, wire::RulesNow, wire::StatusAnswer, wire::BatchStatusAnswer,
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

pub async fn openapi_json() -> JsonAnswer<utoipa::openapi::OpenApi> {
    JsonAnswer(ApiDoc::openapi())
}

pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema of `component.property`, through a `$ref` and the `oneOf` of an optional one.
    fn words(doc: &serde_json::Value, component: &str, property: &str) -> Vec<String> {
        let mut schema = &doc["components"]["schemas"][component]["properties"][property];
        loop {
            if let Some(reference) = schema["$ref"].as_str() {
                schema = &doc["components"]["schemas"][reference.rsplit('/').next().unwrap_or_default()];
            } else if let Some(one_of) = schema["oneOf"].as_array() {
                schema = one_of.iter().find(|s| s["type"] != "null").unwrap_or(&serde_json::Value::Null);
            } else if schema["type"] == "array" {
                schema = &schema["items"];
            } else {
                break;
            }
        }
        schema["enum"].as_array().into_iter().flatten().filter_map(|w| w.as_str().map(str::to_owned)).collect()
    }

    #[test]
    fn the_document_lists_the_words_of_every_vocabulary_the_answers_carry() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let all = |list: &[&str]| list.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        let reasons: Vec<&str> = hotline_core::RevocationReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(words(&doc, "StatusAnswer", "status"), all(&["good", "suspended", "revoked"]));
        assert_eq!(words(&doc, "StatusAnswer", "reason"), all(&reasons));
        assert_eq!(words(&doc, "CertificateStatusOut", "reason"), all(&reasons));
        assert_eq!(words(&doc, "SuspensionReceipt", "status"), all(&["suspended", "already_suspended"]));
        assert_eq!(words(&doc, "SuspensionReceipt", "ca_sync"), all(&["pending", "confirmed", "failed"]));
        assert_eq!(words(&doc, "SuspensionDetail", "status"), all(&["suspended", "released"]));
        assert_eq!(words(&doc, "CertificateOut", "kind"), all(&["signature", "user_identification"]));
        assert_eq!(words(&doc, "CertificateOut", "medium"), all(&["card", "smartphone"]));
        assert_eq!(words(&doc, "RulesNow", "mode"), all(&["day", "night"]));
        assert_eq!(words(&doc, "RulesNow", "accepted_items").len(), hotline_core::Item::ALL.len());
        assert_eq!(words(&doc, "RulesNow", "staffed_languages").len(), hotline_core::Language::ALL.len());
    }
}
