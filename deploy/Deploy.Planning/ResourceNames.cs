using System.Text.RegularExpressions;

namespace BitNet.Deploy.Planning;

/// <summary>
/// Every physical resource name the stacks create, and the limits each cloud puts on it. Names are
/// derived from project and stack (<c>bitnet-dev-2048mb</c>), so a bad project name shows up as the
/// resource name it would break, with that resource's rule.
/// </summary>
public static partial class ResourceNames
{
    public const string AliasName = "live";

    public static string Prefix(DeploymentConfig c) => $"{c.Project}-{c.Stack}".ToLowerInvariant();

    // ---- AWS ----
    public static string LambdaTier(int memoryMb) => $"{memoryMb}mb";
    public static string LambdaFunction(DeploymentConfig c, int memoryMb) => $"{Prefix(c)}-{LambdaTier(memoryMb)}";
    public static string LambdaRole(DeploymentConfig c) => $"{Prefix(c)}-lambda-role";
    public static string EcrRepository(DeploymentConfig c) => Prefix(c);
    public static string KeepWarmRule(DeploymentConfig c, int memoryMb) => $"{LambdaFunction(c, memoryMb)}-keep-warm";
    public static string LogGroup(DeploymentConfig c, int memoryMb) => $"/aws/lambda/{LambdaFunction(c, memoryMb)}";

    // ---- Azure ----
    public static string AzureTier(string sku) => sku.ToLowerInvariant();
    public static string ResourceGroup(DeploymentConfig c) => $"{Prefix(c)}-rg";
    private static string Compact(DeploymentConfig c) => AlphaNumeric().Replace($"{c.Project}{c.Stack}{c.Azure.NameSuffix}", "").ToLowerInvariant();
    public static string ContainerRegistry(DeploymentConfig c) => $"{Compact(c)}acr";
    public static string StorageAccount(DeploymentConfig c) => $"{Compact(c)}st";
    public static string AppServicePlan(DeploymentConfig c, string sku) => $"{Prefix(c)}-{AzureTier(sku)}-plan";
    public static string FunctionApp(DeploymentConfig c, string sku) =>
        c.Azure.NameSuffix.Length == 0 ? $"{Prefix(c)}-{AzureTier(sku)}" : $"{Prefix(c)}-{AzureTier(sku)}-{c.Azure.NameSuffix}";

    /// <summary>A naming rule: a pattern, a length range and the words that explain it.</summary>
    public sealed record Rule(string What, int MinLength, int MaxLength, Regex Pattern, string Allowed)
    {
        public string? Check(string name) =>
            name.Length < MinLength || name.Length > MaxLength
                ? $"{What} name '{name}' is {name.Length} characters; it must be {MinLength}-{MaxLength}"
                : !Pattern.IsMatch(name) ? $"{What} name '{name}' is invalid: {Allowed}" : null;
    }

    public static readonly Rule LambdaFunctionRule = new("Lambda function", 1, 64, LambdaFunctionPattern(), "letters, digits, '-' and '_' only");
    public static readonly Rule IamRoleRule = new("IAM role", 1, 64, IamRolePattern(), "letters, digits and +=,.@-_ only");
    public static readonly Rule EcrRepositoryRule = new("ECR repository", 2, 256, EcrPattern(), "lowercase letters and digits, separated by single '.', '_' or '-'");
    public static readonly Rule EventRuleRule = new("EventBridge rule", 1, 64, EventRulePattern(), "letters, digits, '.', '-' and '_' only");
    public static readonly Rule LogGroupRule = new("CloudWatch log group", 1, 512, LogGroupPattern(), "letters, digits and _-./#");
    public static readonly Rule ResourceGroupRule = new("Azure resource group", 1, 90, ResourceGroupPattern(), "letters, digits, '-', '_', '.', '(' and ')', not ending in '.'");
    public static readonly Rule ContainerRegistryRule = new("Azure container registry", 5, 50, RegistryPattern(), "letters and digits only (globally unique)");
    public static readonly Rule StorageAccountRule = new("Azure storage account", 3, 24, StoragePattern(), "lowercase letters and digits only (globally unique)");
    public static readonly Rule AppServicePlanRule = new("Azure App Service plan", 1, 60, HyphenatedPattern(), "letters, digits and '-', not starting or ending with '-'");
    public static readonly Rule FunctionAppRule = new("Azure function app", 2, 60, HyphenatedPattern(), "letters, digits and '-', not starting or ending with '-' (globally unique)");

    [GeneratedRegex("[^A-Za-z0-9]")] private static partial Regex AlphaNumeric();
    [GeneratedRegex("^[A-Za-z0-9_-]+$")] private static partial Regex LambdaFunctionPattern();
    [GeneratedRegex(@"^[\w+=,.@-]+$")] private static partial Regex IamRolePattern();
    [GeneratedRegex("^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")] private static partial Regex EcrPattern();
    [GeneratedRegex(@"^[.\-_A-Za-z0-9]+$")] private static partial Regex EventRulePattern();
    [GeneratedRegex(@"^[.\-_/#A-Za-z0-9]+$")] private static partial Regex LogGroupPattern();
    [GeneratedRegex(@"^[-\w.()]*[-\w()]$")] private static partial Regex ResourceGroupPattern();
    [GeneratedRegex("^[A-Za-z0-9]+$")] private static partial Regex RegistryPattern();
    [GeneratedRegex("^[a-z0-9]+$")] private static partial Regex StoragePattern();
    [GeneratedRegex("^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")] private static partial Regex HyphenatedPattern();
}
