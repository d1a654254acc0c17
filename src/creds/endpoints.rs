//! IBM COS endpoints from a location, so a user with a credential file and a region needs no URL:
//! `s3.{location}.cloud-object-storage.appdomain.cloud`, with `private.` or `direct.` before the
//! location for the private and direct networks. Regional (`us-south`, `eu-de`, ...), cross-region
//! (`us`, `eu`, `ap`) and single-site (`ams03`, ...) locations all follow this pattern.

/// Which network to reach COS on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Network {
    Public,
    Private,
    Direct,
}

/// The endpoint URL of COS location `region` on `network`.
pub fn cos_endpoint(region: &str, network: Network) -> Result<String, String> {
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "{region:?} is not a COS location (such as us-south, eu-de, us, ams03)"
        ));
    }
    let net = match network {
        Network::Public => "",
        Network::Private => "private.",
        Network::Direct => "direct.",
    };
    Ok(format!("https://s3.{net}{region}.cloud-object-storage.appdomain.cloud"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            cos_endpoint("us-south", Network::Public).expect("ok"),
            "https://s3.us-south.cloud-object-storage.appdomain.cloud"
        );
        assert_eq!(
            cos_endpoint("eu-de", Network::Private).expect("ok"),
            "https://s3.private.eu-de.cloud-object-storage.appdomain.cloud"
        );
        assert_eq!(
            cos_endpoint("us", Network::Direct).expect("ok"),
            "https://s3.direct.us.cloud-object-storage.appdomain.cloud"
        );
        assert!(cos_endpoint("US South", Network::Public).is_err());
    }
}
