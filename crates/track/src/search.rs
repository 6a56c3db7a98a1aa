//! MLflow's search grammar for runs and experiments: `filter` strings and `order_by` clauses,
//! parsed into a small AST and turned into SQL that runs on both stores.
//!
//! ```text
//! filter := clause (AND clause)*
//! clause := ident comparator value | ident IS [NOT] NULL
//! ident  := [prefix "."] key       prefix: metrics, params, tags, attributes (and aliases)
//! key    := word (dots allowed) | `backticked` | "double-quoted"
//! value  := 'string' | number | ('a', 'b', …)
//! ```

use slipway_core::{Sql, SqlValue};

use crate::error::{Error, Result};

/// What an identifier names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    Metric(String),
    Param(String),
    Tag(String),
    /// A column of `runs` or `experiments`, already mapped (`run_name` → `name`, `created` →
    /// `start_time`).
    Attribute(&'static str),
    /// A column of a run's dataset inputs: `dataset_name`, `dataset_digest`, `dataset_context`.
    Dataset(&'static str),
}

/// What is searched: the prefixes and attributes allowed differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Runs,
    Experiments,
    RegisteredModels,
    ModelVersions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    List(Vec<String>),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderBy {
    pub(crate) entity: Entity,
    pub(crate) ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::LParen);
                i += 1;
            }
            ')' => {
                out.push(Token::RParen);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '\'' | '"' | '`' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(Error::invalid(format!(
                                "Invalid filter '{input}': unterminated {quote}quote"
                            )));
                        }
                        Some(&ch) if ch == quote => {
                            // A doubled quote stands for itself.
                            if chars.get(i + 1) == Some(&quote) {
                                s.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some('\\') if chars.get(i + 1) == Some(&quote) => {
                            s.push(quote);
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(if quote == '\'' { Token::Str(s) } else { Token::Quoted(s) });
            }
            '=' => {
                out.push(Token::Op("="));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token::Op("!="));
                i += 2;
            }
            '<' | '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Token::Op(if c == '<' { "<=" } else { ">=" }));
                    i += 2;
                } else if c == '<' && chars.get(i + 1) == Some(&'>') {
                    out.push(Token::Op("!="));
                    i += 2;
                } else {
                    out.push(Token::Op(if c == '<' { "<" } else { ">" }));
                    i += 1;
                }
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.') && next_is_number(&chars, i)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text.parse::<f64>().map_err(|_| {
                    Error::invalid(format!("Invalid filter '{input}': '{text}' is not a number"))
                })?;
                out.push(Token::Num(n));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || matches!(chars[i], '_' | '.' | '-' | ':' | '/'))
                {
                    // A backtick or quote after a dot starts a quoted key: stop before it.
                    i += 1;
                }
                out.push(Token::Word(chars[start..i].iter().collect()));
            }
            other => {
                return Err(Error::invalid(format!(
                    "Invalid filter '{input}': unexpected character '{other}'"
                )));
            }
        }
    }
    Ok(out)
}

fn next_is_number(chars: &[char], i: usize) -> bool {
    chars.get(i + 1).is_some_and(|c| c.is_ascii_digit() || *c == '.')
}

/// Maps `prefix` and `key` to an entity.
fn entity(scope: Scope, prefix: Option<&str>, key: &str) -> Result<Entity> {
    let prefix = prefix.map(str::to_ascii_lowercase);
    if matches!(scope, Scope::RegisteredModels | Scope::ModelVersions) {
        let (attrs, valid): (&[(&str, &'static str)], &str) = if scope == Scope::ModelVersions {
            (
                &[
                    ("name", "name"),
                    ("run_id", "run_id"),
                    ("source_path", "source"),
                    ("version_number", "version"),
                ],
                "'name', 'run_id', 'source_path', 'version_number'",
            )
        } else {
            (&[("name", "name")], "'name'")
        };
        return match prefix.as_deref() {
            Some("tag" | "tags") => Ok(Entity::Tag(key.to_string())),
            Some("attribute" | "attributes" | "attr") | None => {
                match attrs.iter().find(|(k, _)| *k == key) {
                    Some((_, col)) => Ok(Entity::Attribute(col)),
                    None => Err(Error::invalid(format!(
                        "Invalid attribute key '{key}' specified. Valid keys are {valid}"
                    ))),
                }
            }
            Some(other) => Err(Error::invalid(format!(
                "Invalid entity type '{other}'. Valid values are ['tag', 'attribute']"
            ))),
        };
    }
    if scope == Scope::Experiments {
        return match prefix.as_deref() {
            Some("tag" | "tags") => Ok(Entity::Tag(key.to_string())),
            Some("attribute" | "attributes" | "attr") | None => Ok(Entity::Attribute(match key {
                "name" => "name",
                "experiment_id" => "experiment_id",
                "creation_time" => "creation_time",
                "last_update_time" => "last_update_time",
                _ => {
                    return Err(Error::invalid(format!(
                        "Invalid attribute key '{key}' specified. Valid keys are 'name', \
                         'experiment_id', 'creation_time', 'last_update_time'"
                    )));
                }
            })),
            Some(other) => Err(Error::invalid(format!(
                "Invalid entity type '{other}'. Valid values are ['tag', 'attribute']"
            ))),
        };
    }
    let bad_attr = || {
        Error::invalid(format!(
            "Invalid attribute key '{key}' specified. Valid keys are 'run_id', 'run_name', \
             'status', 'user_id', 'artifact_uri', 'start_time', 'end_time', 'created'"
        ))
    };
    match prefix.as_deref() {
        Some("metric" | "metrics") => Ok(Entity::Metric(key.to_string())),
        Some("param" | "params" | "parameter" | "parameters") => Ok(Entity::Param(key.to_string())),
        Some("tag" | "tags") => Ok(Entity::Tag(key.to_string())),
        Some("attribute" | "attributes" | "attr" | "run") | None => {
            Ok(Entity::Attribute(match key {
                "run_id" | "run_uuid" => "run_id",
                "run_name" | "run name" => "name",
                "status" => "status",
                "user_id" => "user_id",
                "artifact_uri" => "artifact_uri",
                "start_time" | "created" | "Created" => "start_time",
                "end_time" => "end_time",
                _ => return Err(bad_attr()),
            }))
        }
        Some("dataset" | "datasets") => Ok(Entity::Dataset(match key {
            "name" => "dataset_name",
            "digest" => "dataset_digest",
            "context" => "dataset_context",
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid dataset key '{key}' specified. Valid keys are 'name', 'digest', 'context'"
                )));
            }
        })),
        Some(other) => Err(Error::invalid(format!(
            "Invalid entity type '{other}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
        ))),
    }
}

/// Reads an identifier starting at `tokens[*pos]`.
fn ident(scope: Scope, tokens: &[Token], pos: &mut usize, input: &str) -> Result<Entity> {
    match tokens.get(*pos) {
        Some(Token::Word(w)) => {
            *pos += 1;
            if let Some(prefix) = w.strip_suffix('.') {
                // `metrics.`key with spaces``
                match tokens.get(*pos) {
                    Some(Token::Quoted(key)) => {
                        *pos += 1;
                        entity(scope, Some(prefix), key)
                    }
                    _ => Err(Error::invalid(format!(
                        "Invalid filter '{input}': a key must follow '{w}'"
                    ))),
                }
            } else if let Some((prefix, key)) = w.split_once('.') {
                entity(scope, Some(prefix), key)
            } else {
                entity(scope, None, w)
            }
        }
        Some(Token::Quoted(key)) => {
            *pos += 1;
            entity(scope, None, key)
        }
        _ => Err(Error::invalid(format!("Invalid filter '{input}': expected a key"))),
    }
}

/// Parses a run `filter` string. An empty filter is no clauses.
pub(crate) fn parse_filter(input: &str) -> Result<Vec<Clause>> {
    parse_filter_in(Scope::Runs, input)
}

/// Parses a registered-model (`registry` true: model-version) `filter` string.
pub(crate) fn parse_registry_filter(versions: bool, input: &str) -> Result<Vec<Clause>> {
    parse_filter_in(if versions { Scope::ModelVersions } else { Scope::RegisteredModels }, input)
}

/// Parses an experiment `filter` string.
pub(crate) fn parse_experiment_filter(input: &str) -> Result<Vec<Clause>> {
    parse_filter_in(Scope::Experiments, input)
}

fn parse_filter_in(scope: Scope, input: &str) -> Result<Vec<Clause>> {
    let tokens = tokenize(input)?;
    let mut pos = 0;
    let mut clauses = Vec::new();
    while pos < tokens.len() {
        if !clauses.is_empty() {
            match tokens.get(pos) {
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => pos += 1,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("or") => {
                    return Err(Error::invalid(format!(
                        "Invalid filter '{input}': only AND is supported between clauses, not OR"
                    )));
                }
                _ => return Err(Error::invalid(format!("Invalid filter '{input}': expected AND"))),
            }
        }
        let entity = ident(scope, &tokens, &mut pos, input)?;
        let op = comparator(&tokens, &mut pos, input)?;
        let value = match op {
            Op::IsNull | Op::IsNotNull => Value::None,
            Op::In | Op::NotIn => list(&tokens, &mut pos, input)?,
            _ => match tokens.get(pos) {
                Some(Token::Str(s)) => {
                    pos += 1;
                    Value::Str(s.clone())
                }
                Some(Token::Num(n)) => {
                    pos += 1;
                    Value::Num(*n)
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "Invalid filter '{input}': expected a value"
                    )));
                }
            },
        };
        clauses.push(check_clause(scope, Clause { entity, op, value }, input)?);
    }
    Ok(clauses)
}

fn comparator(tokens: &[Token], pos: &mut usize, input: &str) -> Result<Op> {
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.to_ascii_uppercase()),
        _ => None,
    };
    let op = match tokens.get(*pos) {
        Some(Token::Op(op)) => {
            *pos += 1;
            match *op {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                _ => Op::Ge,
            }
        }
        _ => match word(*pos).as_deref() {
            Some("LIKE") => {
                *pos += 1;
                Op::Like
            }
            Some("ILIKE") => {
                *pos += 1;
                Op::ILike
            }
            Some("IN") => {
                *pos += 1;
                Op::In
            }
            Some("NOT") if word(*pos + 1).as_deref() == Some("IN") => {
                *pos += 2;
                Op::NotIn
            }
            Some("IS") if word(*pos + 1).as_deref() == Some("NULL") => {
                *pos += 2;
                Op::IsNull
            }
            Some("IS")
                if word(*pos + 1).as_deref() == Some("NOT")
                    && word(*pos + 2).as_deref() == Some("NULL") =>
            {
                *pos += 3;
                Op::IsNotNull
            }
            _ => {
                let seen =
                    tokens.get(*pos).map(|t| format!("{t:?}")).unwrap_or_else(|| "the end".into());
                return Err(Error::invalid(format!(
                    "Invalid comparator in filter '{input}' at {seen}"
                )));
            }
        },
    };
    Ok(op)
}

fn list(tokens: &[Token], pos: &mut usize, input: &str) -> Result<Value> {
    let bad =
        || Error::invalid(format!("Invalid filter '{input}': expected a list like ('a', 'b')"));
    if tokens.get(*pos) != Some(&Token::LParen) {
        return Err(bad());
    }
    *pos += 1;
    let mut items = Vec::new();
    loop {
        match tokens.get(*pos) {
            Some(Token::Str(s)) => items.push(s.clone()),
            _ => return Err(bad()),
        }
        *pos += 1;
        match tokens.get(*pos) {
            Some(Token::Comma) => *pos += 1,
            Some(Token::RParen) => {
                *pos += 1;
                return Ok(Value::List(items));
            }
            _ => return Err(bad()),
        }
    }
}

/// Checks that the comparator and value suit the entity, as MLflow does.
fn check_clause(scope: Scope, clause: Clause, input: &str) -> Result<Clause> {
    let numeric_ops = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];
    let string_ops = [Op::Eq, Op::Ne, Op::Like, Op::ILike, Op::IsNull, Op::IsNotNull];
    let registry = matches!(scope, Scope::RegisteredModels | Scope::ModelVersions);
    let ok = match (&clause.entity, &clause.value) {
        (Entity::Attribute("version"), Value::Num(_)) => numeric_ops.contains(&clause.op),
        (Entity::Attribute("version"), _) => false,
        (Entity::Tag(_), Value::Str(_)) if registry => {
            [Op::Eq, Op::Ne, Op::Like, Op::ILike].contains(&clause.op)
        }
        (Entity::Attribute("name" | "run_id"), Value::List(_)) if registry => true,
        (Entity::Attribute(_), Value::List(_)) if registry => {
            return Err(Error::invalid(
                "Only ['name', 'run_id'] attributes support comparison with a list of quoted string values.",
            ));
        }
        (Entity::Metric(_), Value::Num(_)) => numeric_ops.contains(&clause.op),
        (Entity::Metric(_), _) => false,
        (Entity::Param(_) | Entity::Tag(_), Value::Str(_) | Value::None) => {
            string_ops.contains(&clause.op)
        }
        (Entity::Param(_) | Entity::Tag(_), _) => false,
        (
            Entity::Attribute("start_time" | "end_time" | "creation_time" | "last_update_time"),
            Value::Num(_),
        ) => numeric_ops.contains(&clause.op),
        (
            Entity::Attribute("start_time" | "end_time" | "creation_time" | "last_update_time"),
            _,
        ) => false,
        (Entity::Dataset(_), Value::Str(_)) => {
            [Op::Eq, Op::Ne, Op::Like, Op::ILike].contains(&clause.op)
        }
        (Entity::Dataset(_), Value::List(_)) => true,
        (Entity::Dataset(_), _) => false,
        (Entity::Attribute(attr), Value::List(_)) => {
            if *attr != "run_id" {
                return Err(Error::invalid(
                    "Only ['run_id'] attributes support comparison with a list of quoted string values.",
                ));
            }
            true
        }
        (Entity::Attribute(_), Value::Str(_)) => {
            [Op::Eq, Op::Ne, Op::Like, Op::ILike].contains(&clause.op)
        }
        (Entity::Attribute(_), _) => false,
    };
    if !ok {
        return Err(Error::invalid(format!(
            "Invalid filter '{input}': the comparator or value does not suit {:?}",
            clause.entity
        )));
    }
    Ok(clause)
}

/// Parses run `order_by` entries like `metrics.acc DESC`, `start_time`, ``params.`a b` ASC``.
pub(crate) fn parse_order_by(entries: &[String]) -> Result<Vec<OrderBy>> {
    parse_order_by_in(Scope::Runs, entries)
}

/// Parses experiment `order_by` entries: attributes only (`name`, `creation_time DESC`, …).
pub(crate) fn parse_experiment_order_by(entries: &[String]) -> Result<Vec<OrderBy>> {
    let order = parse_order_by_in(Scope::Experiments, entries)?;
    if let Some(o) = order.iter().find(|o| !matches!(o.entity, Entity::Attribute(_))) {
        return Err(Error::invalid(format!(
            "Invalid order_by entity {:?}: experiments are ordered by attributes only",
            o.entity
        )));
    }
    Ok(order)
}

fn parse_order_by_in(scope: Scope, entries: &[String]) -> Result<Vec<OrderBy>> {
    let mut out: Vec<OrderBy> = Vec::new();
    for entry in entries {
        let tokens = tokenize(entry)?;
        let mut pos = 0;
        let entity = ident(scope, &tokens, &mut pos, entry)?;
        if matches!(entity, Entity::Dataset(_)) {
            return Err(Error::invalid(format!(
                "Invalid order_by clause '{entry}': runs cannot be ordered by datasets"
            )));
        }
        let ascending = match tokens.get(pos) {
            None => true,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("asc") => {
                pos += 1;
                true
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("desc") => {
                pos += 1;
                false
            }
            Some(_) => return Err(Error::invalid(format!("Invalid order_by clause '{entry}'"))),
        };
        if pos != tokens.len() {
            return Err(Error::invalid(format!("Invalid order_by clause '{entry}'")));
        }
        if out.iter().any(|o| o.entity == entity) {
            return Err(Error::invalid(format!("`order_by` contains duplicate fields: '{entry}'")));
        }
        out.push(OrderBy { entity, ascending });
    }
    Ok(out)
}

/// Builds `SELECT r.run_id FROM runs r …` for the experiments, stages, clauses and order.
pub(crate) fn run_query(
    experiment_ids: &[i64],
    stages: &[&str],
    clauses: &[Clause],
    order: &[OrderBy],
    limit: i64,
    offset: i64,
) -> Sql {
    let mut sql = Sql::default();
    let mut joins = String::new();
    let mut wheres: Vec<String> = Vec::new();
    let exps: Vec<String> =
        experiment_ids.iter().map(|id| sql.placeholder(SqlValue::Int(*id))).collect();
    wheres.push(format!("r.experiment_id IN ({})", exps.join(", ")));
    let st: Vec<String> =
        stages.iter().map(|s| sql.placeholder(SqlValue::Text(s.to_string()))).collect();
    wheres.push(format!("r.lifecycle_stage IN ({})", st.join(", ")));

    for c in clauses {
        let cond = match &c.entity {
            Entity::Metric(key) => {
                let k = sql.placeholder(SqlValue::Text(key.clone()));
                let Value::Num(n) = c.value else { continue };
                let v = sql.placeholder(SqlValue::Real(n));
                format!(
                    "EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_id = r.run_id AND m.key = {k} \
                     AND m.is_nan = 0 AND m.value {} {v})",
                    sql_op(c.op)
                )
            }
            Entity::Param(key) | Entity::Tag(key) => {
                let table = if matches!(c.entity, Entity::Param(_)) { "params" } else { "tags" };
                let k = sql.placeholder(SqlValue::Text(key.clone()));
                match (&c.op, &c.value) {
                    (Op::IsNull, _) => format!(
                        "NOT EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = r.run_id AND x.key = {k})"
                    ),
                    (Op::IsNotNull, _) => format!(
                        "EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = r.run_id AND x.key = {k})"
                    ),
                    (op, Value::Str(s)) => {
                        let v = sql.placeholder(SqlValue::Text(s.clone()));
                        format!(
                            "EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = r.run_id AND x.key = {k} AND {})",
                            string_cond("x.value", *op, &v)
                        )
                    }
                    _ => continue,
                }
            }
            Entity::Dataset(col) => {
                let cond = match &c.value {
                    Value::Str(s) => {
                        let v = sql.placeholder(SqlValue::Text(s.clone()));
                        string_cond(&format!("d.{col}"), c.op, &v)
                    }
                    Value::List(items) => in_list(&mut sql, &format!("d.{col}"), c.op, items),
                    _ => continue,
                };
                format!(
                    "EXISTS (SELECT 1 FROM run_inputs d WHERE d.run_id = r.run_id \
                     AND d.kind = 'dataset' AND {cond})"
                )
            }
            Entity::Attribute(col) => match &c.value {
                Value::Num(n) => {
                    let v = sql.placeholder(SqlValue::Real(*n));
                    format!("r.{col} {} {v}", sql_op(c.op))
                }
                Value::Str(s) => {
                    let v = sql.placeholder(SqlValue::Text(s.clone()));
                    string_cond(&format!("r.{col}"), c.op, &v)
                }
                Value::List(items) => in_list(&mut sql, &format!("r.{col}"), c.op, items),
                Value::None => continue,
            },
        };
        wheres.push(cond);
    }

    let mut order_sql: Vec<String> = Vec::new();
    for (i, o) in order.iter().enumerate() {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        match &o.entity {
            Entity::Attribute(col) => {
                order_sql.push(format!("(r.{col} IS NULL) ASC"));
                order_sql.push(format!("r.{col} {dir}"));
            }
            Entity::Metric(key) => {
                let k = sql.placeholder(SqlValue::Text(key.clone()));
                joins.push_str(&format!(
                    " LEFT JOIN latest_metrics o{i} ON o{i}.run_id = r.run_id AND o{i}.key = {k}"
                ));
                // Missing last, then NaN, then the values in the asked direction.
                order_sql.push(format!("(o{i}.value IS NULL) ASC"));
                order_sql.push(format!("o{i}.is_nan ASC"));
                order_sql.push(format!("o{i}.value {dir}"));
            }
            Entity::Param(key) | Entity::Tag(key) => {
                let table = if matches!(o.entity, Entity::Param(_)) { "params" } else { "tags" };
                let k = sql.placeholder(SqlValue::Text(key.clone()));
                joins.push_str(&format!(
                    " LEFT JOIN {table} o{i} ON o{i}.run_id = r.run_id AND o{i}.key = {k}"
                ));
                order_sql.push(format!("(o{i}.value IS NULL) ASC"));
                order_sql.push(format!("o{i}.value {dir}"));
            }
            Entity::Dataset(_) => {}
        }
    }
    if !order.iter().any(|o| o.entity == Entity::Attribute("start_time")) {
        order_sql.push("r.start_time DESC".into());
    }
    order_sql.push("r.run_id ASC".into());
    let l = sql.placeholder(SqlValue::Int(limit));
    let off = sql.placeholder(SqlValue::Int(offset));
    sql.push(format!(
        "SELECT r.run_id FROM runs r{joins} WHERE {} ORDER BY {} LIMIT {l} OFFSET {off}",
        wheres.join(" AND "),
        order_sql.join(", ")
    ));
    sql
}

/// Builds `SELECT <columns> FROM experiments e …` for the stages, clauses and order. Without
/// an order: newest first, then by id, as MLflow.
pub(crate) fn experiment_query(
    columns: &str,
    stages: &[&str],
    clauses: &[Clause],
    order: &[OrderBy],
    limit: i64,
    offset: i64,
) -> Sql {
    // experiment_id is an integer column compared with strings.
    let column = |col: &str| {
        if col == "experiment_id" {
            "CAST(e.experiment_id AS TEXT)".to_string()
        } else {
            format!("e.{col}")
        }
    };
    let mut sql = Sql::default();
    let mut wheres: Vec<String> = Vec::new();
    let st: Vec<String> =
        stages.iter().map(|s| sql.placeholder(SqlValue::Text(s.to_string()))).collect();
    wheres.push(format!("e.lifecycle_stage IN ({})", st.join(", ")));
    for c in clauses {
        let cond = match (&c.entity, &c.value) {
            (Entity::Tag(key), value) => {
                let k = sql.placeholder(SqlValue::Text(key.clone()));
                let exists = "EXISTS (SELECT 1 FROM experiment_tags x WHERE x.experiment_id = e.experiment_id AND x.key =";
                match (c.op, value) {
                    (Op::IsNull, _) => format!("NOT {exists} {k})"),
                    (Op::IsNotNull, _) => format!("{exists} {k})"),
                    (op, Value::Str(s)) => {
                        let v = sql.placeholder(SqlValue::Text(s.clone()));
                        format!("{exists} {k} AND {})", string_cond("x.value", op, &v))
                    }
                    _ => continue,
                }
            }
            (Entity::Attribute(col), Value::Num(n)) => {
                let v = sql.placeholder(SqlValue::Real(*n));
                format!("e.{col} {} {v}", sql_op(c.op))
            }
            (Entity::Attribute(col), Value::Str(s)) => {
                let v = sql.placeholder(SqlValue::Text(s.clone()));
                string_cond(&column(col), c.op, &v)
            }
            (Entity::Attribute(col), Value::List(items)) => {
                in_list(&mut sql, &column(col), c.op, items)
            }
            _ => continue,
        };
        wheres.push(cond);
    }
    let mut order_sql: Vec<String> = Vec::new();
    for o in order {
        if let Entity::Attribute(col) = o.entity {
            let dir = if o.ascending { "ASC" } else { "DESC" };
            order_sql.push(format!("e.{col} {dir}"));
        }
    }
    if order.is_empty() {
        order_sql.push("e.creation_time DESC".into());
    }
    if !order.iter().any(|o| o.entity == Entity::Attribute("experiment_id")) {
        order_sql.push("e.experiment_id ASC".into());
    }
    let l = sql.placeholder(SqlValue::Int(limit));
    let off = sql.placeholder(SqlValue::Int(offset));
    sql.push(format!(
        "SELECT {columns} FROM experiments e WHERE {} ORDER BY {} LIMIT {l} OFFSET {off}",
        wheres.join(" AND "),
        order_sql.join(", ")
    ));
    sql
}

/// `column [NOT] IN (…)` (the parser never yields an empty list).
pub(crate) fn in_list(sql: &mut Sql, column: &str, op: Op, items: &[String]) -> String {
    let vs: Vec<String> =
        items.iter().map(|s| sql.placeholder(SqlValue::Text(s.clone()))).collect();
    let not = if op == Op::NotIn { "NOT " } else { "" };
    format!("{column} {not}IN ({})", vs.join(", "))
}

pub(crate) fn sql_op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        _ => "=",
    }
}

pub(crate) fn string_cond(column: &str, op: Op, placeholder: &str) -> String {
    match op {
        Op::Like => format!("{column} LIKE {placeholder}"),
        Op::ILike => format!("LOWER({column}) LIKE LOWER({placeholder})"),
        Op::Ne => format!("{column} != {placeholder}"),
        _ => format!("{column} = {placeholder}"),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    /// Checks what `scope`'s parser makes of `filter`: one clause a line, or the error.
    fn check_in(scope: Scope, filter: &str, expected: Expect) {
        let actual = match parse_filter_in(scope, filter) {
            Ok(clauses) => clauses
                .iter()
                .map(|c| format!("{:?} {:?} {:?}", c.entity, c.op, c.value))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("error: {e}"),
        };
        expected.assert_eq(&actual);
    }

    fn check(filter: &str, expected: Expect) {
        check_in(Scope::Runs, filter, expected)
    }

    #[test]
    fn filters() {
        check("", expect![""]);
        check("metrics.acc > 0.9", expect![[r#"Metric("acc") Gt Num(0.9)"#]]);
        check(
            "metrics.acc > 0.9 and params.lr = '0.01'",
            expect![[r#"
                Metric("acc") Gt Num(0.9)
                Param("lr") Eq Str("0.01")"#]],
        );
        check(
            "tags.mlflow.runName ILIKE 'PAR%'",
            expect![[r#"Tag("mlflow.runName") ILike Str("PAR%")"#]],
        );
        check("tags.`my key` = 'x'", expect![[r#"Tag("my key") Eq Str("x")"#]]);
        check("params.\"a b\" != 'y'", expect![[r#"Param("a b") Ne Str("y")"#]]);
        check(
            "attributes.run_id IN ('a', 'b')",
            expect![[r#"Attribute("run_id") In List(["a", "b"])"#]],
        );
        check("run_id NOT IN ('a')", expect![[r#"Attribute("run_id") NotIn List(["a"])"#]]);
        check(
            "attributes.status = 'FINISHED'",
            expect![[r#"Attribute("status") Eq Str("FINISHED")"#]],
        );
        check("attributes.`run name` = 'x'", expect![[r#"Attribute("name") Eq Str("x")"#]]);
        check("created > 0", expect![[r#"Attribute("start_time") Gt Num(0.0)"#]]);
        check("metrics.loss <= -1.5e-3", expect![[r#"Metric("loss") Le Num(-0.0015)"#]]);
        check("tags.owner IS NOT NULL", expect![[r#"Tag("owner") IsNotNull None"#]]);
        check(
            "params.x is null AND METRICS.y = 1",
            expect![[r#"
            Param("x") IsNull None
            Metric("y") Eq Num(1.0)"#]],
        );
        check("params.o = 'it''s'", expect![[r#"Param("o") Eq Str("it's")"#]]);
        check("datasets.name = 'train'", expect![[r#"Dataset("dataset_name") Eq Str("train")"#]]);
        check(
            "dataset.context IN ('training', 'eval') and datasets.digest LIKE 'ab%'",
            expect![[r#"
                Dataset("dataset_context") In List(["training", "eval"])
                Dataset("dataset_digest") Like Str("ab%")"#]],
        );
    }

    fn check_experiments(filter: &str, expected: Expect) {
        check_in(Scope::Experiments, filter, expected)
    }

    #[test]
    fn experiment_filters() {
        check_experiments(
            "name LIKE 'falls-%' and tags.team = 'vision'",
            expect![[r#"
                Attribute("name") Like Str("falls-%")
                Tag("team") Eq Str("vision")"#]],
        );
        check_experiments(
            "attributes.creation_time >= 17 AND experiment_id != '0' AND tags.x IS NULL",
            expect![[r#"
                Attribute("creation_time") Ge Num(17.0)
                Attribute("experiment_id") Ne Str("0")
                Tag("x") IsNull None"#]],
        );
        check_experiments(
            "metrics.a > 1",
            expect!["error: Invalid entity type 'metrics'. Valid values are ['tag', 'attribute']"],
        );
        check_experiments(
            "run_name = 'x'",
            expect![
                "error: Invalid attribute key 'run_name' specified. Valid keys are 'name', 'experiment_id', 'creation_time', 'last_update_time'"
            ],
        );
        check_experiments(
            "creation_time = 'yesterday'",
            expect![[
                r#"error: Invalid filter 'creation_time = 'yesterday'': the comparator or value does not suit Attribute("creation_time")"#
            ]],
        );
        let order =
            parse_experiment_order_by(&["name DESC".into(), "creation_time".into()]).unwrap();
        assert_eq!(
            order,
            [
                OrderBy { entity: Entity::Attribute("name"), ascending: false },
                OrderBy { entity: Entity::Attribute("creation_time"), ascending: true }
            ]
        );
        assert!(parse_experiment_order_by(&["tags.team".into()]).is_err());
    }

    #[test]
    fn bad_filters() {
        check(
            "metrics.acc >>> 1",
            expect!["error: Invalid filter 'metrics.acc >>> 1': expected a value"],
        );
        check(
            "metrics.acc = 'high'",
            expect![[
                r#"error: Invalid filter 'metrics.acc = 'high'': the comparator or value does not suit Metric("acc")"#
            ]],
        );
        check(
            "params.lr > '1'",
            expect![[
                r#"error: Invalid filter 'params.lr > '1'': the comparator or value does not suit Param("lr")"#
            ]],
        );
        check(
            "attributes.status IN ('A')",
            expect![
                "error: Only ['run_id'] attributes support comparison with a list of quoted string values."
            ],
        );
        check(
            "metrics.a = 1 OR metrics.b = 2",
            expect![
                "error: Invalid filter 'metrics.a = 1 OR metrics.b = 2': only AND is supported between clauses, not OR"
            ],
        );
        check(
            "foo.bar = 'x'",
            expect![
                "error: Invalid entity type 'foo'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
            ],
        );
        check(
            "nonsense = 'x'",
            expect![
                "error: Invalid attribute key 'nonsense' specified. Valid keys are 'run_id', 'run_name', 'status', 'user_id', 'artifact_uri', 'start_time', 'end_time', 'created'"
            ],
        );
        check(
            "params.lr = 'open",
            expect!["error: Invalid filter 'params.lr = 'open': unterminated 'quote"],
        );
        check(
            "params.lr = 'a' params.b = 'c'",
            expect!["error: Invalid filter 'params.lr = 'a' params.b = 'c'': expected AND"],
        );
        check(
            "datasets.name > 'a'",
            expect![[
                r#"error: Invalid filter 'datasets.name > 'a'': the comparator or value does not suit Dataset("dataset_name")"#
            ]],
        );
        check(
            "datasets.size = 'a'",
            expect![
                "error: Invalid dataset key 'size' specified. Valid keys are 'name', 'digest', 'context'"
            ],
        );
        check(
            "metrics.a ; DROP TABLE runs",
            expect![
                "error: Invalid filter 'metrics.a ; DROP TABLE runs': unexpected character ';'"
            ],
        );
    }

    #[test]
    fn order_by() {
        let parsed = parse_order_by(&[
            "metrics.acc DESC".into(),
            "params.`a b`".into(),
            "start_time asc".into(),
        ])
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                OrderBy { entity: Entity::Metric("acc".into()), ascending: false },
                OrderBy { entity: Entity::Param("a b".into()), ascending: true },
                OrderBy { entity: Entity::Attribute("start_time"), ascending: true },
            ]
        );
        let err = parse_order_by(&["metrics.a".into(), "metrics.a DESC".into()]).unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
        assert!(parse_order_by(&["metrics.a sideways".into()]).is_err());
    }
}
