use std::collections::HashSet;
use touxiang_datasets::{DatasetError, Taxonomy, TaxonomyRegistry};

fn load(csv: &str) -> Result<Taxonomy, DatasetError> {
    Taxonomy::from_csv_reader("t", csv.as_bytes())
}

#[test]
fn gbt4754_counts_by_depth() {
    let t = Taxonomy::gbt4754();
    assert_eq!(t.id(), "gbt4754-2017");
    assert_eq!(t.version(), "gbt4754-2017");
    let counts: Vec<usize> = (0..=3).map(|d| t.at_depth(d).len()).collect();
    assert_eq!(counts, vec![20, 97, 473, 1382]);
    assert_eq!(t.len(), 1972);
    assert_eq!(t.max_depth(), 3);
    assert_eq!(
        (0..4).map(|d| t.level_name(d)).collect::<Vec<_>>(),
        ["section", "division", "group", "class"]
    );
    assert_eq!(t.level_name(4), "");
    assert_eq!(t.roots().len(), 20);
    assert_eq!(t.leaves().len(), 1382);
    assert!(t.leaves().iter().all(|n| n.depth == 3));
}

#[test]
fn gbt4754_every_class_path_has_four_steps() {
    let t = Taxonomy::gbt4754();
    let classes = t.at_depth(3);
    for c in classes {
        let path = t.path(&c.code);
        assert_eq!(path.len(), 4, "path of {}", c.code);
        assert_eq!(path[3].code, c.code);
        for (d, n) in path.iter().enumerate() {
            assert_eq!(n.depth, d);
            if d > 0 {
                assert_eq!(n.parent.as_deref(), Some(path[d - 1].code.as_str()));
            }
        }
        // GB/T codes nest textually below the section: division 2 digits, group 3, class 4.
        assert!(c.code.starts_with(&path[2].code) && path[2].code.starts_with(&path[1].code));
    }
}

#[test]
fn gbt4754_navigation() {
    let t = Taxonomy::gbt4754();
    let n = t.get("6291").expect("6291 小吃服务");
    assert_eq!(n.name, "小吃服务");
    assert_eq!(t.level_of("6291"), Some("class"));
    let path: Vec<&str> = t.path("6291").iter().map(|n| n.code.as_str()).collect();
    assert_eq!(path, ["H", "62", "629", "6291"]);
    assert_eq!(t.ancestor_at("6291", 0).unwrap().code, "H");
    assert_eq!(t.ancestor_at("6291", 1).unwrap().code, "62");
    assert_eq!(t.ancestor_at("6291", 3).unwrap().code, "6291");
    assert!(t.ancestor_at("62", 2).is_none());
    assert!(t.ancestor_at("nope", 0).is_none());
    assert!(t.path("nope").is_empty());
    assert!(t.is_ancestor("H", "6291"));
    assert!(t.is_ancestor("62", "6291"));
    assert!(!t.is_ancestor("6291", "6291"));
    assert!(t.is_ancestor_or_self("6291", "6291"));
    assert!(!t.is_ancestor("C", "6291"));
    assert!(!t.is_ancestor("6291", "H"));
    let kids: Vec<&str> = t.children("629").iter().map(|n| n.code.as_str()).collect();
    assert!(kids.contains(&"6291"));
    assert!(t.children("6291").is_empty());
    let i = t.index_of("6291").unwrap();
    assert_eq!(t.node(i).code, "6291");
    assert_eq!(t.nodes()[i].code, "6291");
    assert!(t.contains("C") && !t.contains("c"));
}

#[test]
fn purpose_taxonomy() {
    let t = Taxonomy::purpose();
    assert_eq!(t.id(), "purpose");
    assert_eq!(t.len(), 10);
    assert_eq!(t.max_depth(), 0);
    assert_eq!(t.get("working_capital").unwrap().name, "流动资金");
    let names: HashSet<&str> = t.nodes().iter().map(|n| n.name.as_str()).collect();
    for want in [
        "流动资金",
        "固定资产",
        "项目建设",
        "个人消费",
        "个人经营",
        "购房",
        "购车",
        "教育",
        "医疗",
        "其他",
    ] {
        assert!(names.contains(want), "{want}");
    }
    assert!(t.nodes().iter().all(|n| n.code.is_ascii()));
}

#[test]
fn custom_levels_and_defaults() {
    // Flat, no level column: "class".
    let t = load("code,name,parent\na,A,\nb,B,\n").unwrap();
    assert_eq!(t.max_depth(), 0);
    assert_eq!(t.level_name(0), "class");
    assert!(t.version().starts_with("t@"));
    // Hierarchical, no level column: level1.. ; parent may come after child; columns any order.
    let t = load("parent,name,code\nr,Leaf,x\n,Root,r\n").unwrap();
    assert_eq!(t.max_depth(), 1);
    assert_eq!(t.level_name(0), "level1");
    assert_eq!(t.level_name(1), "level2");
    assert_eq!(t.get("x").unwrap().depth, 1);
    assert_eq!(t.roots()[0].code, "r");
    // Level and version columns; header case-insensitive; BOM; extra columns ignored.
    let t =
        load("\u{feff}Code,Name,Parent,Level,Version,note\nr,Root,,top,v7,x\nx,Leaf,r,leaf,,y\n")
            .unwrap();
    assert_eq!(t.level_names(), ["top", "leaf"]);
    assert_eq!(t.version(), "v7");
}

#[test]
fn version_changes_with_content() {
    let a = load("code,name,parent\na,A,\n").unwrap();
    let b = load("code,name,parent\na,A2,\n").unwrap();
    let a2 = load("code,name,parent\na,A,\n").unwrap();
    assert_ne!(a.version(), b.version());
    assert_eq!(a.version(), a2.version());
}

#[test]
fn error_duplicate_code() {
    let e = load("code,name,parent\na,A,\nb,B,a\na,Again,\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::DuplicateCode { code, line: 4 } if code == "a"),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "line 4: duplicate code \"a\"");
}

#[test]
fn error_missing_parent() {
    let e = load("code,name,parent\na,A,\nb,B,zz\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::MissingParent { code, parent, line: 3 } if code == "b" && parent == "zz"),
        "{e:?}"
    );
    assert!(e.to_string().contains("line 3"), "{e}");
}

#[test]
fn error_cycles() {
    // a → b → a, both exist, plus a valid root elsewhere.
    let e = load("code,name,parent\nr,R,\na,A,b\nb,B,a\n").unwrap_err();
    match &e {
        DatasetError::Cycle { codes } => {
            let set: HashSet<&str> = codes.iter().map(String::as_str).collect();
            assert_eq!(set, HashSet::from(["a", "b"]));
        }
        other => panic!("expected Cycle, got {other:?}"),
    }
    assert!(e.to_string().contains("cycle"), "{e}");
    // Self-parent.
    let e = load("code,name,parent\na,A,a\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::Cycle { codes } if codes == &["a"]),
        "{e:?}"
    );
    // Longer cycle hanging off a tail: t → c1 → c2 → c3 → c1.
    let e = load("code,name,parent\nt,T,c1\nc1,C1,c2\nc2,C2,c3\nc3,C3,c1\n").unwrap_err();
    match &e {
        DatasetError::Cycle { codes } => {
            let set: HashSet<&str> = codes.iter().map(String::as_str).collect();
            assert_eq!(set, HashSet::from(["c1", "c2", "c3"]), "tail t excluded");
        }
        other => panic!("expected Cycle, got {other:?}"),
    }
}

#[test]
fn error_missing_column_empty_and_fields() {
    let e = load("code,name\na,A\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::MissingColumn { column } if column == "parent"),
        "{e:?}"
    );
    assert!(matches!(
        load("code,name,parent\n").unwrap_err(),
        DatasetError::Empty
    ));
    assert!(matches!(
        load("").unwrap_err(),
        DatasetError::MissingColumn { .. }
    ));
    let e = load("code,name,parent\na,A,\n,B,a\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::EmptyField { line: 3, field } if field == "code"),
        "{e:?}"
    );
    let e = load("code,name,parent\na,,\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::EmptyField { line: 2, field } if field == "name"),
        "{e:?}"
    );
    let e = load("code,name,parent\na,A,\nb,B\n").unwrap_err();
    assert!(matches!(&e, DatasetError::Csv { line: 3, .. }), "{e:?}");
    let e = Taxonomy::from_csv_reader("t", &b"code,name,parent\na,\xff\xfe,\n"[..]).unwrap_err();
    assert!(matches!(&e, DatasetError::Csv { line: 2, .. }), "{e:?}");
}

#[test]
fn error_inconsistent_level() {
    let e =
        load("code,name,parent,level\nr,R,,section\nx,X,r,division\ny,Y,,division\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::InvalidValue { line: 4, field, .. } if field == "level"),
        "{e:?}"
    );
    let e = load("code,name,parent,version\na,A,,v1\nb,B,,v2\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::InvalidValue { line: 3, field, .. } if field == "version"),
        "{e:?}"
    );
}

/// Lending Club's 14 `purpose` values as a flat custom taxonomy.
const LENDING_CLUB: &str = "code,name,parent
debt_consolidation,Debt consolidation,
credit_card,Credit card refinancing,
other,Other,
home_improvement,Home improvement,
major_purchase,Major purchase,
small_business,Small business,
car,Car purchase,
wedding,Wedding expenses,
medical,Medical expenses,
moving,Moving and relocation,
house,House purchase,
educational,Educational,
vacation,Vacation,
renewable_energy,Renewable energy,
";

#[test]
fn registry_builtin_and_load_dir() {
    let mut reg = TaxonomyRegistry::with_builtin();
    assert_eq!(reg.ids(), ["gbt4754-2017", "purpose"]);
    assert_eq!(reg.get("gbt4754-2017").unwrap().len(), 1972);
    assert!(reg.get("lendingclub").is_none());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lendingclub.csv"), LENDING_CLUB).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a taxonomy").unwrap();
    let ids = reg.load_dir(dir.path()).unwrap();
    assert_eq!(ids, ["lendingclub"]);
    let lc = reg.get("lendingclub").unwrap();
    assert_eq!(lc.len(), 14);
    assert_eq!(lc.max_depth(), 0);
    assert_eq!(lc.level_name(0), "class");
    assert_eq!(lc.leaves().len(), 14);
    assert_eq!(lc.get("car").unwrap().name, "Car purchase");
    assert_eq!(reg.ids(), ["gbt4754-2017", "lendingclub", "purpose"]);

    // Loading the same dir again: the id is taken.
    let e = reg.load_dir(dir.path()).unwrap_err();
    assert!(
        matches!(e.root_cause(), DatasetError::DuplicateTaxonomy { id } if id == "lendingclub"),
        "{e:?}"
    );
}

#[test]
fn registry_load_dir_bad_file_names_the_file_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a_good.csv"), LENDING_CLUB).unwrap();
    std::fs::write(
        dir.path().join("b_bad.csv"),
        "code,name,parent\nx,X,\nx,Y,\n",
    )
    .unwrap();
    let mut reg = TaxonomyRegistry::with_builtin();
    let e = reg.load_dir(dir.path()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("b_bad.csv") && msg.contains("line 3"), "{msg}");
    assert!(matches!(e.root_cause(), DatasetError::DuplicateCode { .. }));
    assert!(!reg.contains("a_good"), "registry unchanged on error");
    assert!(reg.load_dir(&dir.path().join("missing")).is_err());
}

#[test]
fn from_csv_path_and_insert() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lc.csv");
    std::fs::write(&p, LENDING_CLUB).unwrap();
    let t = Taxonomy::from_csv_path("lc", &p).unwrap();
    let mut reg = TaxonomyRegistry::new();
    assert!(reg.is_empty());
    assert!(reg.insert(t).is_none());
    assert_eq!(reg.len(), 1);
    let e = Taxonomy::from_csv_path("x", &dir.path().join("nope.csv")).unwrap_err();
    assert!(matches!(e.root_cause(), DatasetError::Io(_)));
    assert!(e.to_string().contains("nope.csv"));
}
