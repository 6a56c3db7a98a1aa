//! Building SQL with a variable number of bind values (`IN (…)` lists, multi-row `INSERT`s) for
//! both stores: placeholders are `$1, $2, …`, which SQLite and PostgreSQL both read. (sqlx's
//! `QueryBuilder` writes `?` for its `Any` driver, which PostgreSQL does not accept.)

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Real(f64),
    NullInt,
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> SqlValue {
        SqlValue::Text(s.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> SqlValue {
        SqlValue::Text(s)
    }
}

impl From<&String> for SqlValue {
    fn from(s: &String) -> SqlValue {
        SqlValue::Text(s.clone())
    }
}

impl From<i64> for SqlValue {
    fn from(i: i64) -> SqlValue {
        SqlValue::Int(i)
    }
}

impl From<f64> for SqlValue {
    fn from(f: f64) -> SqlValue {
        SqlValue::Real(f)
    }
}

/// SQL text and its bind values, built piece by piece. Only the `push`ed text is SQL; every
/// value goes through `bind`.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    text: String,
    binds: Vec<SqlValue>,
}

impl Sql {
    pub fn new(text: impl AsRef<str>) -> Sql {
        Sql { text: text.as_ref().to_string(), binds: Vec::new() }
    }

    /// Appends SQL text (never user data).
    pub fn push(&mut self, text: impl AsRef<str>) -> &mut Sql {
        self.text.push_str(text.as_ref());
        self
    }

    /// Appends a placeholder for `value`.
    pub fn bind(&mut self, value: impl Into<SqlValue>) -> &mut Sql {
        self.binds.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
        self
    }

    /// Returns a placeholder for `value` without appending it, for building text elsewhere.
    pub fn placeholder(&mut self, value: impl Into<SqlValue>) -> String {
        self.binds.push(value.into());
        format!("${}", self.binds.len())
    }

    /// Appends `$a, $b, …` for the values (`NULL` when there are none, so `IN (NULL)` matches
    /// nothing).
    pub fn bind_list<V: Into<SqlValue>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Sql {
        let mut any = false;
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
            any = true;
        }
        if !any {
            self.text.push_str("NULL");
        }
        self
    }

    /// Appends `($a, $b), ($c, $d), …`, one tuple per row.
    pub fn bind_rows<R, I>(&mut self, rows: impl IntoIterator<Item = R>) -> &mut Sql
    where
        R: IntoIterator<Item = I>,
        I: Into<SqlValue>,
    {
        for (i, row) in rows.into_iter().enumerate() {
            self.text.push_str(if i == 0 { "(" } else { ", (" });
            for (j, v) in row.into_iter().enumerate() {
                if j > 0 {
                    self.text.push_str(", ");
                }
                self.bind(v);
            }
            self.text.push(')');
        }
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The query, ready to run.
    pub fn query(&self) -> Query<'static, Any, AnyArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for b in &self.binds {
            q = match b {
                SqlValue::Text(s) => q.bind(s.clone()),
                SqlValue::Int(i) => q.bind(*i),
                SqlValue::Real(f) => q.bind(*f),
                SqlValue::NullInt => q.bind(None::<i64>),
            };
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a = ");
        sql.bind("x").push(" AND b IN (").bind_list([1i64, 2, 3]).push(") AND c IN (");
        sql.bind_list(Vec::<i64>::new()).push(")");
        assert_eq!(
            sql.text(),
            "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3, $4) AND c IN (NULL)"
        );
        let mut rows = Sql::new("INSERT INTO t (a, b) VALUES ");
        rows.bind_rows([
            [SqlValue::Int(1), SqlValue::from("p")],
            [SqlValue::Int(2), SqlValue::from("q")],
        ]);
        assert_eq!(rows.text(), "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
    }
}
