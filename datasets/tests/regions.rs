use touxiang_datasets::{DatasetError, RegionLevel, RegionTable, ResolvedRegion};

fn rr(p: &str, c: Option<&str>, k: Option<&str>) -> ResolvedRegion {
    ResolvedRegion {
        province: p.into(),
        city: c.map(Into::into),
        county: k.map(Into::into),
    }
}

#[test]
fn china_table_counts() {
    let t = RegionTable::china();
    assert_eq!(t.id(), "cn");
    let count = |l| t.regions().iter().filter(|r| r.level == l).count();
    assert_eq!(count(RegionLevel::Province), 31);
    assert_eq!(count(RegionLevel::City), 342);
    assert_eq!(count(RegionLevel::County), 2978);
    for r in t.regions() {
        let want = match r.level {
            RegionLevel::Province => 2,
            RegionLevel::City => 4,
            RegionLevel::County => 6,
        };
        assert_eq!(r.code.len(), want, "{r:?}");
        if let Some(p) = &r.parent {
            assert!(r.code.starts_with(p.as_str()), "{r:?}");
        }
    }
}

#[test]
fn china_resolve_spellings() {
    let t = RegionTable::china();
    let prov = rr("11", None, None);
    for s in ["11", "110000", "1100", " 11 ", "北京市", "北京"] {
        assert_eq!(t.resolve(s), Some(prov.clone()), "{s}");
    }
    let city = rr("11", Some("1101"), None);
    for s in ["1101", "110100"] {
        assert_eq!(t.resolve(s), Some(city.clone()), "{s}");
    }
    let county = rr("11", Some("1101"), Some("110101"));
    // 东城区 is a unique name in the table.
    for s in ["110101", "110101000000", "东城区"] {
        assert_eq!(t.resolve(s), Some(county.clone()), "{s}");
    }
    assert_eq!(t.resolve("440300"), Some(rr("44", Some("4403"), None)));
    assert_eq!(
        t.resolve("440305"),
        Some(rr("44", Some("4403"), Some("440305")))
    );
    assert_eq!(t.resolve("广西").unwrap().province, "45");
    assert_eq!(t.resolve("内蒙古").unwrap().province, "15");
    assert_eq!(t.resolve("广东省").unwrap().province, "44");
    for bad in [
        "",
        "99",
        "990000",
        "1199",
        "119901",
        "abc",
        "市辖区",
        "11010",
    ] {
        assert_eq!(t.resolve(bad), None, "{bad:?}");
    }
    assert_eq!(t.get("110000").unwrap().name, "北京市");
    assert_eq!(t.get("110101").unwrap().level, RegionLevel::County);
}

#[test]
fn china_children() {
    let t = RegionTable::china();
    let cities = t.children("44");
    assert!(cities
        .iter()
        .any(|c| c.code == "4403" && c.name == "深圳市"));
    assert!(cities.iter().all(|c| c.level == RegionLevel::City));
    assert_eq!(t.children("440000").len(), cities.len());
    assert!(t.children("4403").iter().any(|c| c.code == "440305"));
    assert!(t.children("440305").is_empty());
    assert!(t.children("nope").is_empty());
}

#[test]
fn us_states() {
    let t = RegionTable::us_states();
    assert_eq!(t.id(), "us");
    assert_eq!(t.len(), 51);
    for s in ["CA", "ca", " Ca", "California", "california"] {
        assert_eq!(t.resolve(s), Some(rr("CA", None, None)), "{s}");
    }
    assert_eq!(t.resolve("DC").unwrap().province, "DC");
    assert_eq!(t.resolve("XX"), None);
    assert!(t.children("CA").is_empty());
}

/// Every `addr_state` of the Lending Club data resolves. Reads `../shared/datasets`, which a
/// checkout alone does not have: run by `.ci/shared-data-tests` where it is present.
#[test]
#[ignore = "needs ../shared/datasets (Lending Club loans.csv); .ci/shared-data-tests runs it"]
fn us_covers_lending_club_states() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets/lendingclub-2007-2011/loans.csv");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (this test needs ../shared/datasets)",
            path.display()
        )
    });
    let mut rdr = csv::Reader::from_reader(file);
    let col = rdr
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "addr_state")
        .unwrap();
    let t = RegionTable::us_states();
    let mut n = 0;
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let s = &rec[col];
        assert!(
            t.resolve(s).is_some(),
            "addr_state {s:?} not in regions-us.csv"
        );
        n += 1;
    }
    assert!(n > 30_000);
}

#[test]
fn region_validation_errors() {
    let load = |s: &str| RegionTable::from_csv_reader("x", s.as_bytes());
    let e = load("code,name,level\n11,A,province\n").unwrap_err();
    assert!(matches!(&e, DatasetError::MissingColumn { column } if column == "parent"));
    let e = load("code,name,level,parent\n11,A,province,\n11,B,province,\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::DuplicateCode { line: 3, .. }),
        "{e:?}"
    );
    let e = load("code,name,level,parent\n11,A,province,\n1201,B,city,12\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::MissingParent { line: 3, parent, .. } if parent == "12"),
        "{e:?}"
    );
    let e = load("code,name,level,parent\n11,A,state,\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::InvalidValue { line: 2, field, .. } if field == "level"),
        "{e:?}"
    );
    let e = load("code,name,level,parent\n11,A,province,\n110101,B,county,11\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::InvalidValue { line: 3, field, .. } if field == "parent"),
        "{e:?}"
    );
    let e = load("code,name,level,parent\n1101,B,city,\n").unwrap_err();
    assert!(
        matches!(&e, DatasetError::EmptyField { line: 2, .. }),
        "{e:?}"
    );
    assert!(matches!(
        load("code,name,level,parent\n").unwrap_err(),
        DatasetError::Empty
    ));
}

#[test]
fn region_level_serde() {
    assert_eq!(
        serde_json::to_string(&RegionLevel::County).unwrap(),
        "\"county\""
    );
    let r: RegionLevel = serde_json::from_str("\"province\"").unwrap();
    assert_eq!(r, RegionLevel::Province);
}
