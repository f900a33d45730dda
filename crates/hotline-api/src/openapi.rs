//! The OpenAPI document (`/openapi.json`) and a self-contained page that
//! renders it (`/docs`): no CDN, so it works on an isolated network.

use axum::response::Html;
use serde::Deserialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::answer::JsonAnswer;
use crate::routes;
use crate::wire;

/// The holder, identified by number and date of birth.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
pub struct HolderIn {
    /// 12 digits with a valid check digit. Never stored or logged in clear.
    #[schema(example = "123456789018")]
    pub individual_number: String,
    #[schema(example = "1980-04-01", format = Date)]
    pub date_of_birth: String,
}

/// A report of a lost or stolen item. Unknown fields are refused.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
pub struct SuspensionRequest {
    #[schema(example = "call-2026-11-22-0042")]
    pub call_id: String,
    /// ja en zh ko es pt th ne id vi tl
    #[schema(example = "en")]
    pub language: String,
    /// card, smartphone, notification_card or number_notice
    #[schema(example = "card")]
    pub item: String,
    /// loss or theft
    #[schema(example = "loss")]
    pub cause: String,
    pub holder: HolderIn,
    /// Required when item is smartphone, refused otherwise.
    pub device_id: Option<String>,
    pub police_report_number: Option<String>,
}

/// A release at the counter.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
pub struct ReleaseRequest {
    /// The identity document the clerk checked.
    #[schema(example = "residence card")]
    pub verified_with: String,
    pub note: Option<String>,
}

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
        routes::suspensions::create, routes::suspensions::get, routes::suspensions::release,
        routes::status::get, routes::status::batch, routes::rules::now, routes::health::healthz, routes::health::readyz,
    ),
    components(schemas(
        SuspensionRequest, HolderIn, ReleaseRequest, wire::SuspensionReceipt, wire::SuspensionDetail,
        wire::CertificateOut, wire::RulesOut, wire::CertificateStatusOut, wire::RulesNow,
        wire::StatusAnswer, wire::BatchStatusQuery, wire::StatusQueryItem, wire::BatchStatusAnswer,
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
