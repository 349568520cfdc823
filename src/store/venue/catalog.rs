//! A venue's catalog: categories and products, each list replaced whole.

use entity::{categories, products};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Number};

use super::{ensure_venue, stored_price, whole_units};
use crate::{
    core::{events::RoomKey, wire::cashier::types},
    store::{
        command::{Command, DomainError, Outcome},
        event_log::NewEvent,
    },
};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Category {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Product {
    pub id: String,
    pub name: String,
    /// Any JSON number from 0, kept as written (`1000`, `1000.0`, `12.5`).
    #[schema(value_type = f64, minimum = 0)]
    pub price: Number,
    #[serde(default)]
    pub category_id: Option<String>,
    #[serde(default = "yes")]
    pub available: bool,
}

fn yes() -> bool {
    true
}

pub async fn categories<C: ConnectionTrait>(
    db: &C,
    venue: &str,
) -> Result<Vec<Category>, DomainError> {
    Ok(categories::Entity::find()
        .filter(categories::Column::VenueId.eq(venue))
        .order_by_asc(categories::Column::Position)
        .all(db)
        .await?
        .into_iter()
        .map(|c| Category {
            id: c.id,
            name: c.name,
        })
        .collect())
}

pub async fn products<C: ConnectionTrait>(
    db: &C,
    venue: &str,
) -> Result<Vec<Product>, DomainError> {
    Ok(products::Entity::find()
        .filter(products::Column::VenueId.eq(venue))
        .order_by_asc(products::Column::Position)
        .all(db)
        .await?
        .into_iter()
        .map(|p| Product {
            id: p.id,
            name: p.name,
            price: stored_price(&p.price_json, p.price),
            category_id: p.category_id,
            available: p.available,
        })
        .collect())
}

/// Replaces the venue's categories (`categories_updated`).
pub struct SetCategories {
    pub venue: String,
    pub categories: Vec<Category>,
}

impl Command for SetCategories {
    type Output = Vec<Category>;

    fn room(&self) -> RoomKey {
        RoomKey::Venue(self.venue.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Vec<Category>> {
        Box::pin(async move {
            ensure_venue(txn, &self.venue, now).await?;
            categories::Entity::delete_many()
                .filter(categories::Column::VenueId.eq(self.venue.as_str()))
                .exec(txn)
                .await?;
            for (i, c) in self.categories.iter().enumerate() {
                categories::ActiveModel {
                    venue_id: Set(self.venue.clone()),
                    id: Set(c.id.clone()),
                    name: Set(c.name.clone()),
                    position: Set(i as i32),
                }
                .insert(txn)
                .await?;
            }
            let ev = NewEvent::new(
                types::CATEGORIES_UPDATED,
                &json!({"categories": self.categories}),
                None,
            );
            Ok((self.categories, vec![ev]))
        })
    }
}

/// Replaces the venue's products and prices (`prices_updated`).
pub struct SetProducts {
    pub venue: String,
    pub products: Vec<Product>,
}

impl Command for SetProducts {
    type Output = Vec<Product>;

    fn room(&self) -> RoomKey {
        RoomKey::Venue(self.venue.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Vec<Product>> {
        Box::pin(async move {
            ensure_venue(txn, &self.venue, now).await?;
            products::Entity::delete_many()
                .filter(products::Column::VenueId.eq(self.venue.as_str()))
                .exec(txn)
                .await?;
            for (i, p) in self.products.iter().enumerate() {
                products::ActiveModel {
                    venue_id: Set(self.venue.clone()),
                    id: Set(p.id.clone()),
                    name: Set(p.name.clone()),
                    price: Set(whole_units(&p.price)),
                    price_json: Set(p.price.to_string()),
                    category_id: Set(p.category_id.clone()),
                    available: Set(p.available),
                    position: Set(i as i32),
                }
                .insert(txn)
                .await?;
            }
            let ev = NewEvent::new(
                types::PRICES_UPDATED,
                &json!({"products": self.products}),
                None,
            );
            Ok((self.products, vec![ev]))
        })
    }
}
